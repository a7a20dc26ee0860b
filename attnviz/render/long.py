"""Views for long inputs, drawn from per-head statistics (``attnviz.stats``) instead of an L x L canvas.

``overview``: one head's pooled R x R map (block means) with position ticks; ``positions``: entropy, sink share
and attention received along the position axis (the head chosen and the mean of all heads), the plots
long-context papers draw; ``heads``: a layers x heads table of sink share, entropy and look-back distance, to
spot sink heads (arXiv:2309.17453) and retrieval heads (arXiv:2404.15574).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from attnviz.errors import BadInput
from attnviz.render.style import CMAP

if TYPE_CHECKING:
    from attnviz.maps import AttentionMaps

LONG_VIEWS = ("overview", "positions", "heads")


def long_view(maps: "AttentionMaps", view: str, *, layer: int = -1, head: int = 0, example: int = 0) -> Figure:
    """``view`` (one of LONG_VIEWS) of one example; full maps get their statistics computed first."""
    maps = maps.with_statistics()
    if not maps.stats:
        raise BadInput(f"--view {view} needs per-head statistics or full weights; these maps hold neither")
    li = maps.layer_index(layer)
    if view == "heads":
        return _heads(maps, example)
    hi = maps.head_index(head)
    return _overview(maps, li, hi, example) if view == "overview" else _positions(maps, li, hi, example)


def _name(maps: "AttentionMaps", li: int, hi: int | None = None) -> str:
    where = f"layer {maps.layers[li]}" + ("" if hi is None else f", head {maps.heads[hi]}")
    return f"{maps.model}: {where}" if maps.model else where


def _overview(maps: "AttentionMaps", li: int, hi: int, example: int) -> Figure:
    grid = maps.stats["overview"][li, example, hi].float().numpy()  # (Rq, Rk)
    q_len, k_len = maps.stats["entropy"].shape[-1], maps.stats["received"].shape[-1]
    fig = Figure(figsize=(6.4, 5.6))
    ax = fig.add_axes((0.12, 0.1, 0.72, 0.78))
    image = ax.imshow(grid, cmap=CMAP, extent=(0, k_len, q_len, 0), interpolation="nearest", aspect="auto")
    ax.set_xlabel("key position")
    ax.set_ylabel("query position")
    ax.set_title(f"{_name(maps, li, hi)}\nblock means over a {grid.shape[0]} x {grid.shape[1]} grid", fontsize=9)
    bar = fig.colorbar(image, cax=fig.add_axes((0.87, 0.1, 0.03, 0.78)))
    bar.set_label("mean attention weight in the block")
    return fig


def _real(maps: "AttentionMaps", example: int) -> np.ndarray:
    """Positions of the example's real tokens (its mask), in order."""
    return np.flatnonzero(maps.mask[example].numpy() > 0)


def _positions(maps: "AttentionMaps", li: int, hi: int, example: int) -> Figure:
    real = _real(maps, example)
    fig = Figure(figsize=(8.0, 6.4))
    axes = fig.subplots(3, 1, sharex=True)
    rows = (("entropy", "row entropy (nats)"), ("sink", "share on the first token"),
            ("received", "attention received"))
    for ax, (name, label) in zip(axes, rows):
        values = maps.stats[name][li, example].float().numpy()[:, real]  # (h, n)
        ax.plot(real, values[hi], lw=1.0, label=f"head {maps.heads[hi]}")
        ax.plot(real, values.mean(0), lw=1.0, color="0.5", label="mean of heads")
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    axes[2].set_yscale("log")  # the first token often receives tens of times what the others do
    axes[0].legend(fontsize=8, loc="upper right")
    axes[-1].set_xlabel("position (query for entropy and sink share, key for attention received)")
    fig.suptitle(_name(maps, li), fontsize=9)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.93, bottom=0.09, hspace=0.12)
    return fig


def _heads(maps: "AttentionMaps", example: int) -> Figure:
    real = _real(maps, example)
    panels = (("sink", "sink share"), ("entropy", "entropy (nats)"), ("distance", "mean distance |q - k|"))
    n_layers, n_heads = len(maps.layers), len(maps.heads)
    fig = Figure(figsize=(min(18.0, 3.0 + 1.2 * n_heads), 1.6 + 0.35 * n_layers * 3))
    axes = fig.subplots(3, 1)
    for ax, (name, label) in zip(axes, panels):
        table = maps.stats[name][:, example].float().numpy()[:, :, real].mean(-1)  # (layers, heads)
        image = ax.imshow(table, cmap=CMAP, aspect="auto", interpolation="nearest")
        ax.set_yticks(range(n_layers), [str(layer) for layer in maps.layers], fontsize=7)
        ax.set_xticks(range(n_heads), [str(h) for h in maps.heads], fontsize=7)
        ax.set_ylabel("layer", fontsize=8)
        ax.set_title(f"{label}, mean over the {len(real)} queries", fontsize=9)
        fig.colorbar(image, ax=ax)
    axes[-1].set_xlabel("head", fontsize=8)
    fig.suptitle(maps.model or "per-head statistics", fontsize=9)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.92, bottom=0.06, hspace=0.45)
    return fig
