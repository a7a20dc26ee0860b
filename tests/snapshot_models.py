"""Tiny seeded models for the snapshot tests: toys as LoadedModels, and a saved tiny BERT folder for the CLI."""

from __future__ import annotations

from pathlib import Path

import torch

from attnviz.models.toys.chars import BOS_ID, EOS_ID, PAD_ID, CharTokenizer
from attnviz.models.loaded import LoadedModel
from attnviz.models.toys.toy import ToyConfig, build_toy

TEXTS = ["the cat sat on the mat", "a dog ran far", "我喜欢这部电影", "hello world, hello"]
CHARS = sorted(set("".join(TEXTS)) | set("abcdefghijklmnopqrstuvwxyz ,.!?<>&\"'/"))


def toy(kind: str = "encoder", seed: int = 0, n_layers: int = 2, **overrides) -> LoadedModel:
    """A seeded random toy of ``kind`` wrapped as attnviz wraps its own toys."""
    style = "bos" if kind == "decoder" else "cls"
    tok = CharTokenizer(CHARS, style=style, model_max_length=48)
    n_classes = overrides.pop("n_classes", 2 if kind == "encoder" else 0)
    cfg = ToyConfig(kind=kind, vocab_size=len(tok), d_model=16, n_layers=n_layers, n_heads=2, max_len=48,
                    n_classes=n_classes, **overrides)
    torch.manual_seed(seed)
    model = build_toy(cfg).eval()
    with torch.no_grad():  # GPT-2's std 0.02 init attends almost uniformly; trained models do not
        for module in model.modules():
            if hasattr(module, "qkv"):
                module.qkv.weight.mul_(10)
        if kind == "encoder-decoder":  # ends greedy decoding after a few tokens: each step is a full forward
            model.head.bias[EOS_ID] = 0.3
    task = {"encoder": "classification", "decoder": "causal-lm", "encoder-decoder": "seq2seq"}[kind]
    meta = dict(decoder_start=BOS_ID, eos=EOS_ID, pad=PAD_ID) if kind == "encoder-decoder" else {}
    return LoadedModel(model=model, name=f"toy-{kind}", kind=kind, task=task, num_layers=n_layers, num_heads=2,
                       backend="attnviz", tokenizer=tok, labels=["negative", "positive"] if n_classes else [],
                       max_length=48, source="seeded in the tests", architecture="ToyTransformer", meta=meta)


def nudge_query(loaded: LoadedModel, layer: int, amount: float) -> None:
    """Add +-``amount`` (seeded signs) to every entry of one layer's query projection, a toy's or a BERT's.

    Signs, not one constant: after a LayerNorm the inputs sum to ~0, which a constant shift cannot see.
    """
    model = loaded.model
    if hasattr(model, "encoder") and hasattr(model.encoder, "layers"):  # a toy: q is the first third of qkv
        qkv = model.encoder.layers[layer].attn.qkv.weight  # (3d, d)
        weight = qkv[: qkv.shape[1]]
    else:
        weight = model.encoder.layer[layer].attention.self.query.weight
    signs = torch.randint(0, 2, weight.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        weight += amount * signs.to(weight.dtype)


WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + "the a cat dog sat on mat ran far hello world big <script> & 猫 狗".split()


def save_bert(folder: Path, seed: int = 0, nudge: tuple[int, float] | None = None) -> Path:
    """A 2-layer, 4-head BERT with a word-level tokenizer, saved as load_model reads it."""
    import transformers as tf

    cfg = tf.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                        vocab_size=len(WORDS), max_position_embeddings=64,
                        initializer_range=0.2)  # sharper attention than the default 0.02
    torch.manual_seed(seed)
    model = tf.BertModel(cfg).eval()
    if nudge is not None:
        signs = torch.randint(0, 2, (32, 32), generator=torch.Generator().manual_seed(0)) * 2 - 1
        with torch.no_grad():
            model.encoder.layer[nudge[0]].attention.self.query.weight += nudge[1] * signs
    model.save_pretrained(folder)
    tf.BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)}, do_lower_case=False).save_pretrained(folder)
    return folder
