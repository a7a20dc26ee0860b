"""The attention-variants gallery: one heatmap per mask pattern or score function, with a caption."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

import torch
from matplotlib.figure import Figure

from attnviz.render.fonts import families_for
from attnviz.render.style import CMAP, cut_label, label_step


@dataclass(frozen=True)
class Panel:
    name: str  # e.g. "local window"
    group: str  # "mask pattern" | "score function"
    caption: str  # one line: what this variant is
    weights: torch.Tensor  # (Q, K) attention of one example, head-averaged
    queries: tuple[str, ...]  # query labels
    keys: tuple[str, ...]  # key labels


def _ticks(ax, labels: tuple[str, ...], axis: str, size: float) -> None:
    pos = list(range(0, len(labels), label_step(len(labels))))
    families, _ = families_for(labels)
    kw = {"fontsize": size, "fontfamily": families}
    if axis == "x":
        ax.set_xticks(pos, [cut_label(labels[i]) for i in pos], rotation=90, **kw)
    else:
        ax.set_yticks(pos, [cut_label(labels[i]) for i in pos], **kw)


def _draw(ax, panel: Panel, labels: bool) -> None:
    ax.imshow(panel.weights.float().numpy(), cmap=CMAP, vmin=0.0, aspect="equal", interpolation="nearest")
    size = max(4.0, min(8.0, 200.0 / max(len(panel.keys), 1)))
    if labels:
        _ticks(ax, panel.keys, "x", size)
        _ticks(ax, panel.queries, "y", size)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(panel.name, fontsize=10, fontweight="bold")
    ax.set_xlabel("\n".join(textwrap.wrap(panel.caption, 44)), fontsize=7.5)


def panel_figure(panel: Panel) -> Figure:
    """One variant as its own figure, with token labels and a colorbar."""
    fig = Figure(figsize=(5.2, 5.6), layout="constrained")
    ax = fig.add_subplot()
    _draw(ax, panel, labels=True)
    fig.colorbar(ax.images[0], ax=ax, shrink=0.7, label="attention weight")
    return fig


def overview_figure(panels: list[Panel], title: str, cols: int = 5) -> Figure:
    """Every variant side by side: mask patterns on the first row(s), score functions after."""
    groups = list(dict.fromkeys(p.group for p in panels))
    rows_per = [math.ceil(sum(p.group == g for p in panels) / cols) for g in groups]
    fig = Figure(figsize=(cols * 3.2, sum(rows_per) * 3.9 + 0.6), layout="constrained")
    axes = fig.subplots(sum(rows_per), cols, squeeze=False)
    row = 0
    for group, n_rows in zip(groups, rows_per):
        mine = [p for p in panels if p.group == group]
        for i in range(n_rows * cols):
            ax = axes[row + i // cols, i % cols]
            if i >= len(mine):
                ax.axis("off")
                continue
            _draw(ax, mine[i], labels=False)
            if i % cols == 0:
                ax.set_ylabel(group, fontsize=10)
        row += n_rows
    fig.suptitle(title, fontsize=11)
    return fig
