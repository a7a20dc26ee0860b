"""Colour scales of the head view: what a colour means when one key takes most of the attention.

From about a thousand tokens the first token (an attention sink) takes most of every row, and a linear
scale from 0 to its weight leaves the rest of the map uniformly dark. ``auto`` (the default) is linear, but
when the first key column holds most of the attention it is left out of the scale (its cells saturate)
and the colour bar's label says so; ``linear`` is the plain scale, ``log`` spans four decades below the top,
``rank`` colours each weight by the share of weights below it. ``clip`` (a percentile) sets the top of the
linear and log scales at that percentile of the weights instead of their maximum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SCALES = ("auto", "linear", "log", "rank")
SINK_SHARE = 0.5  # the first key column is a sink when it takes more than this share of the attention
LOG_DECADES = 4.0  # a log scale spans this many powers of ten below its top


@dataclass(frozen=True)
class Colour:
    """What is drawn: ``values`` (Q, K) coloured from 0 to ``top``, tick labels at the colour bar's fractions
    and a note for the colour bar's label ("" when the scale is the plain linear one)."""

    values: np.ndarray
    top: float
    ticks: list[str]
    note: str


def is_sink(matrix: np.ndarray) -> bool:
    """The first key column takes more than SINK_SHARE of the attention (and there is more than one key)."""
    total = float(matrix.sum())
    return matrix.shape[1] > 2 and total > 0 and float(matrix[:, 0].sum()) > SINK_SHARE * total


def colour(matrix: np.ndarray, scale: str, clip: float | None, top: float | None, ceiling, fractions) -> Colour:
    """The ``matrix`` (Q, K) on ``scale``; ``top`` fixes a linear scale's top (shared panels); ``ceiling`` rounds
    a top up to a nice number; ``fractions`` are where the colour bar has labels (0..1)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, not {scale!r}")
    if scale == "rank":
        return _rank(np.asarray(matrix, dtype=np.float32), fractions)
    sink = scale == "auto" and top is None and is_sink(matrix)
    region = matrix[:, 1:] if sink else matrix
    notes = ["key 0 left out of the scale"] if sink else []
    if clip is not None:
        hi = float(np.percentile(region, clip)) if region.size else 0.0
        notes.append(f"clipped at the {clip:g}th percentile")
    else:
        hi = float(region.max(initial=0.0))
    if scale == "log":
        return _log(np.asarray(matrix, dtype=np.float32), hi, fractions, notes)
    hi = top if top is not None else ceiling(hi)
    return Colour(matrix, hi, [f"{t * hi:.3g}" for t in fractions], ", ".join(notes))


def _log(matrix: np.ndarray, hi: float, fractions, notes: list[str]) -> Colour:
    """log10 of the weights from LOG_DECADES below ``hi`` up to ``hi``, drawn on 0..1."""
    hi = hi if hi > 0 and math.isfinite(hi) else 1.0
    low = math.log10(hi) - LOG_DECADES
    shown = (np.log10(np.maximum(matrix, 10.0 ** low)) - low) / LOG_DECADES  # (Q, K) in [0, 1] up to hi
    ticks = [f"{10.0 ** (low + t * LOG_DECADES):.2g}" for t in fractions]
    return Colour(np.clip(shown, 0.0, 1.0).astype(np.float32), 1.0, ticks, ", ".join(["log scale", *notes]))


def _rank(matrix: np.ndarray, fractions) -> Colour:
    """Each weight's share of the weights below it (ties share one rank), drawn on 0..1."""
    flat = np.sort(matrix.ravel())
    if flat.size < 2:
        return Colour(np.zeros_like(matrix), 1.0, [f"{t:.2g}" for t in fractions], "rank")
    below = np.searchsorted(flat, matrix, side="left")  # (Q, K) weights strictly below
    shown = (below / (flat.size - 1)).astype(np.float32)
    ticks = [f"{float(np.quantile(flat, t)):.2g}" for t in fractions]
    return Colour(shown, 1.0, ticks, "rank: colour = share of weights below")
