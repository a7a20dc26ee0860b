"""Tiny seeded random Hugging Face models for the tests: built in code, never downloaded.

Each builder returns ``(model_class, config)``; ``build`` seeds and instantiates, ``save`` writes a
folder that ``load_hf`` can read (safetensors weights, config, and a small word-level tokenizer).
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers as tf

tf.utils.logging.set_verbosity_error()
tf.utils.logging.disable_progress_bar()
# Models this small gain nothing from threads; on a busy machine the hand-offs between threads cost
# a hundred times more than the arithmetic (measured: 72 s against 0.6 s for one greedy decode).
torch.set_num_threads(1)

VOCAB = 99
# A word-level vocabulary: ids stay below VOCAB, and Chinese characters are real tokens, not [UNK].
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "the a cat dog sat on mat and ran far is was big small red blue hello world "
    "猫 狗 在 上 我 你 他 好 大 小"
).split()

_TEXT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, vocab_size=VOCAB)
_IMAGE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, image_size=16,
              patch_size=4)


def _seq2seq(**kw):
    return dict(d_model=32, vocab_size=VOCAB, pad_token_id=0, eos_token_id=3, decoder_start_token_id=2, **kw)


BUILDERS = {
    "bert": lambda: (tf.BertModel, tf.BertConfig(**_TEXT)),
    "bert-mlm": lambda: (tf.BertForMaskedLM, tf.BertConfig(**_TEXT)),
    "gpt2": lambda: (tf.GPT2LMHeadModel, tf.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=VOCAB,
                                                       n_positions=64, pad_token_id=0)),
    # Grouped-query attention: 4 query heads share 2 key/value heads.
    "llama": lambda: (tf.LlamaForCausalLM, tf.LlamaConfig(**_TEXT, num_key_value_heads=2, pad_token_id=0,
                                                          max_position_embeddings=64)),
    "t5": lambda: (tf.T5ForConditionalGeneration, tf.T5Config(**_seq2seq(
        d_kv=8, d_ff=37, num_layers=2, num_decoder_layers=2, num_heads=4))),
    "bart": lambda: (tf.BartForConditionalGeneration, tf.BartConfig(**_seq2seq(
        encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64, bos_token_id=2))),
    "vit": lambda: (tf.ViTModel, tf.ViTConfig(**_IMAGE)),
    "clip": lambda: (tf.CLIPVisionModel, tf.CLIPVisionConfig(**_IMAGE)),
    "distilbert": lambda: (tf.DistilBertModel, tf.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=37,
                                                                   vocab_size=VOCAB)),
    # These three do not dispatch through the attention interface: attnviz falls back to eager.
    "bloom": lambda: (tf.BloomForCausalLM, tf.BloomConfig(hidden_size=32, n_layer=2, n_head=4, vocab_size=VOCAB,
                                                          pad_token_id=0)),
    "gptj": lambda: (tf.GPTJForCausalLM, tf.GPTJConfig(n_embd=32, n_layer=2, n_head=4, vocab_size=VOCAB,
                                                       rotary_dim=4, n_positions=64, pad_token_id=0)),
    "deberta-v2": lambda: (tf.DebertaV2Model, tf.DebertaV2Config(**_TEXT)),
}


def build(name: str, seed: int = 0) -> torch.nn.Module:
    model_class, config = BUILDERS[name]()
    torch.manual_seed(seed)
    return model_class(config).eval()


def tokenizer(token_types: bool = True):
    names = ["input_ids", "token_type_ids", "attention_mask"] if token_types else ["input_ids", "attention_mask"]
    return tf.BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)}, model_input_names=names)


def save(name: str, folder: Path, seed: int = 0) -> Path:
    """A model folder as load_hf expects it: config.json, model.safetensors and a tokenizer."""
    build(name, seed).save_pretrained(folder)
    tokenizer(token_types=name in ("bert", "deberta-v2")).save_pretrained(folder)
    return folder


def load(name: str, folder: Path, attn_implementation: str) -> torch.nn.Module:
    model_class, _ = BUILDERS[name]()
    return model_class.from_pretrained(folder, attn_implementation=attn_implementation).eval()
