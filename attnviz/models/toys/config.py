"""ToyConfig: the architecture of a toy Transformer, checked when it is made and stored with its weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from attnviz.attention.kernel import MASKS, SCORES
from attnviz.errors import BadInput

KINDS = ("encoder", "decoder", "encoder-decoder", "vision")
POSITIONS = ("learned", "sinusoidal")


@dataclass(frozen=True)
class ToyConfig:
    kind: str = "encoder"  # "encoder" | "decoder" | "encoder-decoder" | "vision"
    vocab_size: int = 64  # token ids lie in [0, vocab_size); unused by "vision"
    d_model: int = 64  # width of the residual stream
    n_layers: int = 2  # blocks per stack (an encoder-decoder has this many on each side)
    n_heads: int = 4  # attention heads per block; must divide d_model
    max_len: int = 128  # longest token sequence the position table covers
    score: str = "scaled-dot"  # a name in SCORES
    mask: str = "global"  # a name in MASKS; decoder self-attention is causal AND this pattern
    window: int = 3  # half-width of the "local" band
    stride: int = 4  # period of "strided"; row length of "axial" on text
    positions: str = "learned"  # "learned" | "sinusoidal"
    n_classes: int = 0  # 0: LM head over the vocab; >0: classifier on the first token (a decoder: the last real one)
    image_size: int = 32  # "vision": side of the square input image in pixels
    patch_size: int = 8  # "vision": side of a square patch in pixels; divides image_size
    channels: int = 3  # "vision": input image channels
    dropout: float = 0.0  # on attention weights and residual branches, while training
    pad_id: int = 0  # the padding token id
    bos_id: int = 4  # first decoder token when an encoder-decoder gets no decoder inputs

    def __post_init__(self):
        SCORES.get(self.score), MASKS.get(self.mask)  # unknown names raise, listing the known ones
        problems = []
        if self.kind not in KINDS:
            problems.append(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.positions not in POSITIONS:
            problems.append(f"positions must be one of {', '.join(POSITIONS)}, not {self.positions!r}")
        if self.n_heads < 1 or self.d_model % self.n_heads:
            problems.append(f"n_heads ({self.n_heads}) must divide d_model ({self.d_model})")
        if self.kind == "vision" and (self.n_classes < 1 or self.image_size % self.patch_size):
            problems.append("a vision toy needs n_classes > 0 and a patch_size that divides image_size")
        if self.kind == "encoder-decoder" and self.n_classes:
            problems.append("an encoder-decoder toy has an LM head: n_classes must be 0")
        if problems:
            raise BadInput("bad toy config: " + "; ".join(problems))

    @property
    def grid(self) -> int:
        """Patches per side of a vision toy's image."""
        return self.image_size // self.patch_size

    @property
    def n_positions(self) -> int:
        """Rows of the position table: a ViT needs one per patch plus CLS."""
        return max(self.max_len, self.grid**2 + 1) if self.kind == "vision" else self.max_len

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ToyConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadInput(f"unknown toy config fields {unknown}; known: {', '.join(sorted(known))}")
        return cls(**data)
