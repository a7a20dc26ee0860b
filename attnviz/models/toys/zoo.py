"""The built-in toys: name -> a function that builds a LoadedModel.

Four are trained on synthetic tasks with known ground truth (``attnviz.models.toys.data``) and ship their
weights in ``weights/``; four more are seeded random toys of each kind, for quick use and tests.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Callable

import torch

from attnviz.errors import ModelNotFound
from attnviz.models.toys.chars import BOS_ID, EOS_ID, PAD_ID, CharTokenizer
from attnviz.models.toys.data import sentiment, sequences
from attnviz.models.loaded import LoadedModel
from attnviz.models.toys.recipes import RECIPES
from attnviz.models.toys.store import WEIGHTS, load_toy, read_meta
from attnviz.models.toys.toy import ToyConfig, ToyTransformer, build_toy
from attnviz.models.toys.vision import ToyImageProcessor
from attnviz.registry import Registry

ZOO: Registry[Callable] = Registry("built-in model")
TRAINED = tuple(RECIPES)  # toy-sentiment, toy-induction, toy-reverse, toy-shapes
RANDOM_SEED = 0


def weights_path(name: str):
    return WEIGHTS / f"{name}.safetensors"


def wrap(name: str, model: ToyTransformer, tokenizer: CharTokenizer | None, *, task: str, labels=(),
         source: str, meta: dict | None = None, multi_label: bool = False) -> LoadedModel:
    """A toy as a LoadedModel: what encode(), capture() and greedy decoding need to know."""
    cfg = model.config
    meta = dict(meta or {})
    if cfg.kind == "encoder-decoder":
        meta.update(decoder_start=BOS_ID, eos=EOS_ID, pad=PAD_ID)
    return LoadedModel(
        model=model.eval(), name=name, kind=cfg.kind, task=task, num_layers=cfg.n_layers, num_heads=cfg.n_heads,
        backend="attnviz", tokenizer=tokenizer,
        processor=ToyImageProcessor(cfg.image_size) if cfg.kind == "vision" else None,
        labels=list(labels), max_length=cfg.n_positions if cfg.kind == "vision" else cfg.max_len,
        source=source, architecture=f"ToyTransformer ({cfg.kind}, {cfg.score}, {cfg.mask} attention)", meta=meta,
        multi_label=multi_label,
    )


def load_trained(name: str) -> LoadedModel:
    return _trained(name, weights_path(name), "shipped with attnviz")


def load_weights_file(path: Path) -> LoadedModel:
    """A toy trained with `attnviz toy train --out FILE`, loaded by the file's path."""
    if "task" not in read_meta(path):
        raise ModelNotFound(f"{path} is a .safetensors file but not toy weights from `attnviz toy train`; "
                            "for a Hugging Face model give its folder")
    return _trained(str(path), Path(path), f"toy weights {Path(path).name}")


def _trained(name: str, path: Path, origin: str) -> LoadedModel:
    model, tok, meta = load_toy(path)
    facts = {k: meta[k] for k in ("description", "accuracy", "checks") if k in meta}
    facts["description"] = facts.get("description", "") + _check_line(meta.get("checks") or {})
    return wrap(name, model, tok, task=meta["task"], labels=meta.get("labels", ()),
                source=f"{origin} (trained, seed {meta.get('seed', 0)})", meta=facts,
                multi_label=bool(meta.get("multi_label", False)))


def _check_line(checks: dict) -> str:
    """The attention check stored with the weights, as `attnviz info` shows it."""
    if "induction_head" in checks:
        (layer, head), value = checks["induction_head"], checks["induction_attention"]
        return f"; layer {layer} head {head} puts {value:.2f} of its attention on the induction position"
    if "antidiagonal_head" in checks:
        (layer, head), value = checks["antidiagonal_head"], checks["antidiagonal_argmax"]
        return f"; layer {layer} head {head}'s cross-attention argmax is on the anti-diagonal for {value:.0%} of outputs"
    return ""


def any_text_chars() -> list[str]:
    """A random toy's vocabulary: printable ASCII plus every character the trained toys know."""
    return sorted(set(string.ascii_letters + string.digits + string.punctuation + " ")
                  | set(sentiment.vocabulary()) | set(sequences.vocabulary()))


RANDOM_SIZE = dict(d_model=32, n_layers=2, n_heads=4, max_len=32)  # every random toy's size
RANDOM = {  # name -> (config overrides, task, tokenizer style, labels)
    "toy-encoder": (dict(kind="encoder", n_classes=2), "classification", "cls", ("class 0", "class 1")),
    "toy-decoder": (dict(kind="decoder"), "causal-lm", "bos", ()),
    "toy-seq2seq": (dict(kind="encoder-decoder"), "seq2seq", "cls", ()),
    "toy-vit": (dict(kind="vision", n_classes=4, image_size=32, patch_size=8), "image-classification", "cls",
                tuple(f"class {i}" for i in range(4))),
}


def load_random(name: str) -> LoadedModel:
    overrides, task, style, labels = RANDOM[name]
    chars = any_text_chars()
    tok = None if overrides["kind"] == "vision" else CharTokenizer(chars, style=style, model_max_length=32)
    cfg = ToyConfig(vocab_size=len(CharTokenizer(chars)), **RANDOM_SIZE, **overrides)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(RANDOM_SEED)
        model = build_toy(cfg)
    finally:
        torch.random.set_rng_state(state)  # loading a model must not change the caller's random stream
    return wrap(name, model, tok, task=task, labels=labels, source=f"random weights (seed {RANDOM_SEED})",
                meta={"description": f"untrained {cfg.kind} toy for quick tries"})


for _name in TRAINED:
    ZOO.register(_name)(lambda _n=_name: load_trained(_n))
for _name in RANDOM:
    ZOO.register(_name)(lambda _n=_name: load_random(_n))
