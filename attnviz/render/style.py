"""Shared drawing constants, importable without torch (report workers draw with these alone)."""

MAX_LABELS = 60  # above this many tokens only every k-th label is drawn
MAX_INCHES = 18.0  # a figure grows with its input up to this size
CMAP = "viridis"  # attention weights: perceptually uniform, readable in greyscale
