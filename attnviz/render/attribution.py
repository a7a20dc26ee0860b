"""Attribution figures: tokens coloured by signed score (one row per method), bars, a faithfulness table.

Pure data in (token strings, score lists), a matplotlib Figure out; never pyplot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure

from attnviz.render.fonts import families_for

CMAP = "RdBu_r"  # diverging: red raises the target, blue lowers it, white is neutral
MAX_TOKENS = 80  # above this many tokens, cell labels are thinned
MAX_INCHES = 18.0


@dataclass
class AttributionView:
    """What one example's figure shows."""

    tokens: list[str]  # the example's real tokens
    scores: dict[str, list[float]]  # method -> one score per token
    title: str  # e.g. the model and the input
    subtitle: str  # target, prediction, probability
    table: list[list[str]] = field(default_factory=list)  # faithfulness rows: method, deletion, insertion, ...
    columns: list[str] = field(default_factory=list)  # header of ``table``


def normalised(scores: list[float]) -> np.ndarray:
    """Scores divided by their largest magnitude: comparable colours across methods of any scale."""
    arr = np.asarray(scores, dtype=np.float64)
    top = float(np.abs(arr).max()) if arr.size else 0.0
    return arr / top if top > 0 else arr


def attribution_figure(view: AttributionView) -> tuple[Figure, str | None]:
    """The report figure for one example, and a warning line (e.g. no CJK font) or None."""
    methods = list(view.scores)
    n = len(view.tokens)
    families, warning = families_for(view.tokens)
    width = max(8.0, min(MAX_INCHES, 2.2 + 0.38 * min(n, MAX_TOKENS)))
    rows = len(methods)
    heights = [0.45 * rows + 0.9, 2.2 + 0.2 * math.ceil(rows / 5)] + ([0.3 * (len(view.table) + 1) + 0.3] if view.table else [])
    fig = Figure(figsize=(width, sum(heights) + 0.9), layout="constrained")
    axes = fig.subplots(len(heights), 1, gridspec_kw={"height_ratios": heights})
    fig.suptitle(f"{view.title}\n{view.subtitle}", fontsize=10)
    _cells(fig, axes[0], view, methods, families)
    _bars(axes[1], view, methods, families)
    if view.table:
        _table(axes[2], view)
    return fig, warning


def _cells(fig, ax, view: AttributionView, methods: list[str], families) -> None:
    grid = np.stack([normalised(view.scores[m]) for m in methods]) if methods else np.zeros((0, 0))
    im = ax.imshow(grid, cmap=CMAP, vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    n = len(view.tokens)
    step = max(1, math.ceil(n / MAX_TOKENS))
    longest = max((len(t) for t in view.tokens), default=1)
    size = max(5.0, min(9.0, 300.0 / max(n, 1), 60.0 / max(longest, 1)))
    for r in range(len(methods)):
        for c in range(0, n, step):
            dark = abs(grid[r, c]) > 0.6
            ax.text(c, r, view.tokens[c], ha="center", va="center", fontsize=size, fontfamily=families,
                    color="white" if dark else "black")
    ax.set_yticks(range(len(methods)), methods, fontsize=9)
    ax.set_xticks([])
    ax.set_title("token scores (each row scaled by its largest magnitude)", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.9, pad=0.01, label="scaled score")


def _bars(ax, view: AttributionView, methods: list[str], families) -> None:
    n = len(view.tokens)
    width = 0.8 / max(len(methods), 1)
    colors = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666", "#1f78b4"]
    for i, m in enumerate(methods):
        x = np.arange(n) + (i - (len(methods) - 1) / 2) * width
        ax.bar(x, normalised(view.scores[m]), width=width, color=colors[i % len(colors)], label=m)
    ax.axhline(0, color="black", linewidth=0.6)
    step = max(1, math.ceil(n / MAX_TOKENS))
    ax.set_xticks(range(0, n, step), view.tokens[::step], fontsize=max(5.0, min(9.0, 300.0 / max(n, 1))),
                  fontfamily=families, rotation=90 if n > 20 else 0)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("scaled score", fontsize=8)
    ax.legend(fontsize=7, ncols=min(len(methods), 5), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)


def _table(ax, view: AttributionView) -> None:
    ax.axis("off")
    t = ax.table(cellText=view.table, colLabels=view.columns, loc="center", cellLoc="center")
    t.auto_set_font_size(False)
    t.set_fontsize(8)
    t.auto_set_column_width(list(range(len(view.columns))))
    ax.set_title("faithfulness (deletion: lower is better; insertion: higher is better)", fontsize=9)


def bars_figure(view: AttributionView) -> Figure:
    """Only the bar chart, for the HTML report (tokens and table are HTML there)."""
    n = len(view.tokens)
    fig = Figure(figsize=(max(8.0, min(MAX_INCHES, 2.0 + 0.32 * min(n, MAX_TOKENS))), 3.0), layout="constrained")
    families, _ = families_for(view.tokens)
    _bars(fig.add_subplot(), view, list(view.scores), families)
    return fig
