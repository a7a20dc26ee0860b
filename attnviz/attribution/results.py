"""What attribution hands back: token scores (``Attribution``) and maps over an image's patches (``CamResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Attribution:
    """One method's token scores for a batch of texts.

    ``scores`` (B, S) float32 on the CPU, signed where the method is, 0 at padding; ``mask`` (B, S) 1 for a
    real token; ``tokens`` B lists of S strings (padded). ``target``, ``prediction`` and ``probability``
    hold one entry per example: what is explained, the model's own output, and the target's probability
    (the cosine similarity for a sentence encoder). ``params`` are the options the method ran with (its
    typed options as a dict); ``extra`` adds facts such as the completeness gap, the faithfulness curves
    (``extra["faithfulness"]``, one dict per example) and the model id.
    """

    method: str  # a name in attnviz.attribution.METHODS
    tokens: list[list[str]]  # per example, padded to S
    scores: torch.Tensor  # (B, S) float32
    mask: torch.Tensor  # (B, S) 1 = real token
    target: list[str]  # what is explained, per example
    prediction: list[str]  # the model's own output, per example
    probability: list[float]  # of the target (cosine similarity for a sentence encoder)
    params: dict = field(default_factory=dict)  # options the method ran with
    extra: dict = field(default_factory=dict)  # e.g. completeness gap, faithfulness, model id
    pieces: list[list[str]] = field(default_factory=list)  # per example, the tokenizer's raw pieces beside tokens
    bounds: list[str] = field(default_factory=list)  # per example, W/C/+ per token (models/readable.py)


@dataclass
class CamResult:
    """One CAM method's maps for a list of images.

    ``maps`` (B, gh, gw) float32 in [0, 1] over the patch grid, one per image; ``heads`` (B, H, gh, gw)
    for the per-head method; ``boxes`` per image the (left, top, right, bottom) region of the original
    image the model saw; ``top`` per image the top-k (label, probability) pairs, empty without classes.
    """

    method: str
    maps: torch.Tensor  # (B, gh, gw) float32 in [0, 1], one per image
    target: list[str]  # what was explained, per image
    target_index: list[int]  # its class (or prompt) index; -1 for an embedding norm
    top: list[list[tuple[str, float]]]  # top-k (label, probability) per image; empty without classes
    prefix: int  # tokens before the patches
    heads: torch.Tensor | None = None  # (B, H, gh, gw) per-head maps (method "heads")
    boxes: list[tuple] = field(default_factory=list)  # per image: (left, top, right, bottom) the model saw
    params: dict = field(default_factory=dict)  # options the method ran with
    notes: list[str] = field(default_factory=list)

    @property
    def grid(self) -> tuple[int, int]:
        """(gh, gw): patches per column and per row."""
        return tuple(self.maps.shape[-2:])
