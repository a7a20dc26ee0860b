"""Tokenizers as the real families ship them, built in code (never a download), and tiny models around them.

``byte_bpe`` is GPT-2's / RoBERTa's / BLOOM's kind: byte-level BPE whose merges are trained here on a few
English and Chinese sentences, so that Chinese characters end up split over several byte tokens as they
are in GPT-2. ``sentencepiece_bpe`` is Llama 2's kind: "▁" for a space and <0x..> byte fallback.
``save_lm`` writes a folder (config, weights, tokenizer) that ``attnviz`` loads like a downloaded model.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import transformers as tf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SENTENCES = [
    "The movie was wonderful, and the music was not bad.", "Paris is the capital of France.",
    "The capital of Italy is Rome.", "I liked this movie very much.", "We went to Paris and Rome.",
    "我喜欢这部电影", "这部电影很好看", "我们在北京", "他喜欢音乐",
]
ENGLISH = 6  # the first six sentences, seen more often than the Chinese ones (a character they lack splits over bytes)
BYTE_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


@lru_cache(maxsize=4)
def _byte_model(vocab: int) -> str:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=BYTE_SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SENTENCES[:ENGLISH] * 6 + SENTENCES[ENGLISH:], trainer)  # Chinese rarer: split over bytes
    return tok.to_str()


def byte_bpe(padding_side: str = "right", roberta: bool = False, vocab: int = 340):
    """A GPT-2-style byte-level BPE tokenizer (RoBERTa-style with <s> ... </s> around each text)."""
    tok = Tokenizer.from_str(_byte_model(vocab))
    if roberta:
        tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return tf.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                      unk_token="<unk>", mask_token="<mask>", padding_side=padding_side)


def sentencepiece_bpe(padding_side: str = "right"):
    """A Llama-2-style tokenizer: "▁" marks spaces, bytes without a piece fall back to <0x..> tokens."""
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.train_from_iterator(SENTENCES * 3, trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                               show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tf.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                      pad_token="</s>", padding_side=padding_side)


_SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)


def configs(vocab: int) -> dict:
    """Family name -> (model class, config): the families' own configs, shrunk."""
    return {
        "gpt2": (tf.GPT2LMHeadModel, tf.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=vocab, n_positions=128,
                                                     bos_token_id=0, eos_token_id=2, pad_token_id=1)),
        "bloom": (tf.BloomForCausalLM, tf.BloomConfig(hidden_size=32, n_layer=2, n_head=4, vocab_size=vocab,
                                                      bos_token_id=0, eos_token_id=2, pad_token_id=1)),
        "llama": (tf.LlamaForCausalLM, tf.LlamaConfig(**_SMALL, num_key_value_heads=2, vocab_size=vocab,
                                                      max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
                                                      pad_token_id=2)),
        "roberta": (tf.RobertaForSequenceClassification, tf.RobertaConfig(
            **_SMALL, vocab_size=vocab, max_position_embeddings=130, pad_token_id=1, bos_token_id=0,
            eos_token_id=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})),
        "roberta-mlm": (tf.RobertaForMaskedLM, tf.RobertaConfig(**_SMALL, vocab_size=vocab, pad_token_id=1,
                                                                max_position_embeddings=130)),
    }


def save_lm(family: str, folder: Path, padding_side: str = "right", seed: int = 0) -> Path:
    """A tiny ``family`` model with its shipped kind of tokenizer, saved as a model folder."""
    tokenizer = sentencepiece_bpe(padding_side) if family == "llama" else byte_bpe(
        padding_side, roberta=family.startswith("roberta"))
    cls, config = configs(len(tokenizer))[family]
    torch.manual_seed(seed)
    cls(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
