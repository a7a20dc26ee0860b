"""The figure of an explained answer: one generated x source matrix per method, and the prompt coloured
for the whole answer. Pure data in (token strings, score rows), a matplotlib Figure out; never pyplot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from attnviz.render.fonts import families_for

CMAP = "RdBu_r"  # red raises the generated token, blue lowers it
MAX_LABELS = 60  # labels along an axis beyond this are thinned
MAX_INCHES = 20.0


@dataclass
class GenerationView:
    """One explained answer: ``tokens`` (prompt then answer), ``steps`` (position of each explained token, its
    label) and ``scores[method]``: per step, one score per position before it (a list or a 1-D array)."""

    title: str
    tokens: list[str]
    prompt_length: int
    steps: list[tuple[int, str]]
    scores: dict[str, list]


def matrix(rows: list, width: int) -> np.ndarray:
    """(sources, steps) of rows each scaled by its largest magnitude; positions a step cannot see are NaN."""
    out = np.full((width, len(rows)), np.nan)
    for j, row in enumerate(rows):
        arr = np.asarray(row, dtype=np.float64)
        top = float(np.abs(arr).max()) if arr.size else 0.0
        out[: len(arr), j] = arr / top if top > 0 else arr
    return out


def whole_answer(rows: list, width: int) -> np.ndarray:
    """(width,) the mean of the scaled rows over the steps, scaled again: the prompt coloured for the answer."""
    m = np.nan_to_num(matrix(rows, width)).mean(axis=1)
    top = float(np.abs(m).max()) if m.size else 0.0
    return m / top if top > 0 else m


def _ticks(n: int) -> int:
    return max(1, math.ceil(n / MAX_LABELS))


def generation_figure(view: GenerationView) -> tuple[Figure, str | None]:
    """The figure and a warning line (a missing CJK font) or None."""
    methods = list(view.scores)
    width = max((pos for pos, _ in view.steps), default=1)  # sources: every position some step can see
    families, warning = families_for(view.tokens)
    rows_h = min(12.0, 1.5 + 0.16 * min(width, MAX_LABELS))
    cols_w = min(MAX_INCHES, max(7.0, 2.5 + 0.3 * min(len(view.steps), MAX_LABELS) * len(methods)))
    fig = Figure(figsize=(cols_w, rows_h + 0.5 + 0.5 * len(methods) + 0.8), layout="constrained")
    grid = fig.add_gridspec(2, max(len(methods), 1), height_ratios=[rows_h, 0.5 * len(methods) + 0.5])
    fig.suptitle(view.title, fontsize=10, fontfamily=families)
    for i, m in enumerate(methods):
        ax = fig.add_subplot(grid[0, i])
        im = ax.imshow(matrix(view.scores[m], width), cmap=CMAP, vmin=-1, vmax=1, aspect="auto",
                       interpolation="nearest")
        ax.set_title(m, fontsize=9)
        step = _ticks(len(view.steps))
        ax.set_xticks(range(0, len(view.steps), step), [view.steps[j][1] for j in range(0, len(view.steps), step)],
                      fontsize=7, fontfamily=families, rotation=90)
        ystep = _ticks(width)
        ax.set_yticks(range(0, width, ystep), [f"{view.tokens[k]} {k}" for k in range(0, width, ystep)] if i == 0
                      else [], fontsize=7, fontfamily=families)
        ax.axhline(view.prompt_length - 0.5, color="black", linewidth=0.6)  # prompt above, answer below
        ax.set_xlabel("generated token", fontsize=8)
    fig.colorbar(im, ax=fig.axes, shrink=0.6, pad=0.01, label="score, each step scaled by its largest magnitude")
    _prompt_row(fig.add_subplot(grid[1, :]), view, methods, width, families)
    return fig, warning


def _prompt_row(ax, view: GenerationView, methods: list[str], width: int, families) -> None:
    """The tokens a step can see, coloured per method by their share in the whole answer."""
    shown = np.stack([whole_answer(view.scores[m], width) for m in methods]) if methods else np.zeros((0, width))
    ax.imshow(shown, cmap=CMAP, vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    step = _ticks(width)
    size = max(5.0, min(9.0, 300.0 / max(width, 1)))
    for r in range(len(methods)):
        for c in range(0, width, step):
            ax.text(c, r, view.tokens[c], ha="center", va="center", fontsize=size, fontfamily=families,
                    color="white" if abs(shown[r, c]) > 0.6 else "black")
    ax.set_yticks(range(len(methods)), methods, fontsize=8)
    ax.set_xticks([])
    ax.set_title("the prompt (and answer) coloured for the whole answer", fontsize=9)
