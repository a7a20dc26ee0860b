"""Shared drawing constants, importable without torch (report workers draw with these alone).

One label limit for every attention view (head, layer, mean, the gallery and the snapshot drift panels):
at most MAX_LABELS labels per axis, each at most LABEL_CHARS characters.
"""

MAX_LABELS = 60  # above this many tokens only every k-th label is drawn
LABEL_CHARS = 14  # longer token labels are cut with an ellipsis so that fixed margins hold them
MAX_INCHES = 18.0  # a figure grows with its input up to this size
CMAP = "viridis"  # attention weights: perceptually uniform, readable in greyscale
DIFF_CMAP = "magma"  # |difference| of two attention maps (snapshot drift), unlike the weights beside it
DPI = 100  # PNG resolution of attention views, from `attnviz heatmap` and `attnviz report` alike


def cut_label(token: str) -> str:
    """``token``, cut to LABEL_CHARS characters with an ellipsis."""
    return token if len(token) <= LABEL_CHARS else token[: LABEL_CHARS - 1] + "…"


def label_step(n: int) -> int:
    """Every how many positions a label is drawn, so that at most MAX_LABELS are."""
    return max(1, -(-n // MAX_LABELS))
