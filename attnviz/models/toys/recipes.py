"""How each trained toy is built and trained: its config, tokenizer, labels and training budget."""

from __future__ import annotations

from dataclasses import dataclass, field

from attnviz.models.toys.chars import CharTokenizer
from attnviz.models.toys.data import sentiment, sequences, shapes
from attnviz.models.toys.toy import ToyConfig


@dataclass(frozen=True)
class Recipe:
    name: str  # the zoo name, e.g. "toy-sentiment"
    task: str  # LoadedModel.task
    description: str  # one line for `attnviz models` / `attnviz info`
    config: ToyConfig  # architecture (vocab_size is filled from the tokenizer)
    chars: tuple[str, ...] = ()  # the char tokenizer's vocabulary; empty for images
    style: str = "cls"  # the char tokenizer's special-token style
    labels: tuple[str, ...] = ()  # class names of a classifier
    multi_label: bool = False  # classes are independent: examples carry a list "labels", trained with sigmoids
    steps: int = 1000  # optimiser steps of a full training run
    batch: int = 64  # examples per step
    lr: float = 3e-3  # AdamW peak learning rate (linear warm-up, cosine decay)
    pool: int = 20000  # training examples generated once and sampled from
    extra: dict = field(default_factory=dict)  # task facts stored with the weights
    smoothing: float = 0.0  # label smoothing of a classifier's loss
    fade: float = 0.0  # share of classifier rows whose text fades toward [PAD] (see train.faded)
    blank: float = 0.0  # share of training texts with non-deciding characters turned to [PAD] (see train.blank_out)

    def tokenizer(self) -> CharTokenizer | None:
        if not self.chars:
            return None
        return CharTokenizer(list(self.chars), style=self.style, model_max_length=self.config.max_len)


def _text(kind: str, chars: list[str], **overrides) -> ToyConfig:
    vocab = len(CharTokenizer(chars))
    # Sinusoidal positions make "the previous character" a fixed linear map: words of characters form fast.
    base = dict(kind=kind, vocab_size=vocab, d_model=32, n_layers=2, n_heads=4, max_len=80, positions="sinusoidal")
    return ToyConfig(**{**base, **overrides})


RECIPES = {
    r.name: r
    for r in (
        Recipe("toy-sentiment", "classification",
               "sentiment of short English/Chinese texts with negation (char tokens, [CLS] classifier)",
               _text("encoder", sentiment.vocabulary(), n_classes=len(sentiment.LABELS), n_layers=3),
               tuple(sentiment.vocabulary()), "cls", sentiment.LABELS, steps=2500, smoothing=0.1, fade=0.25, blank=0.3),
        Recipe("toy-induction", "causal-lm", "next token of a repeated random segment (induction heads)",
               # Learned positions: with sinusoids it found a smeared copy rule instead of an induction head.
               _text("decoder", sequences.vocabulary(), max_len=40, d_model=64, positions="learned"),
               tuple(sequences.vocabulary()), "bos", steps=3000),
        Recipe("toy-reverse", "seq2seq", "reverses a sequence (cross-attention on the anti-diagonal)",
               _text("encoder-decoder", sequences.vocabulary(), max_len=24, d_model=64),
               tuple(sequences.vocabulary()), "cls", steps=3000),
        Recipe("toy-shapes", "image-classification",
               "which shapes are in a noisy 32x32 image, one to three of four (multi-label ViT, 4x4 patches)",
               ToyConfig(kind="vision", d_model=48, n_layers=3, n_heads=4, n_classes=len(shapes.CLASSES),
                         image_size=shapes.SIZE, patch_size=shapes.PATCH),
               labels=shapes.CLASSES, multi_label=True, steps=5000, pool=40000),
    )
}
