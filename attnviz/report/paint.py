"""Per-item PNGs for batch reports, drawn in worker processes.

A new matplotlib figure per PNG spends most of its time building axes and laying them out; the head view
here keeps one figure per size class and only swaps the image, ticks and title (DESIGN.md section 3:
reuse figures in batch work). Other views go through ``attnviz.render`` unchanged.
"""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from attnviz.render.fonts import families_for
from attnviz.render.style import CMAP, MAX_LABELS
from attnviz.report.files import write_atomic

LABEL_CHARS = 14  # longer token labels are cut with an ellipsis so that fixed margins hold them


@dataclass(frozen=True)
class PaintJob:
    folder: Path  # the item's own folder (already created, inside the output folder)
    views: tuple[str, ...]  # view names to draw, e.g. ("head", "model")
    weights: np.ndarray  # (L, H, n, n) float32, real tokens only
    tokens: list[str]  # the n real tokens
    layers: list[int]  # model layer number of each entry of weights' first axis
    heads: list[int]  # model head number of each entry of weights' second axis
    layer: int  # position along weights' first axis for the head view
    head: int  # position along weights' second axis for the head view
    title: str  # figure title (model name)
    dpi: int = 100  # PNG resolution


def init_worker() -> None:
    """Ctrl-C is handled by the parent, which shuts the pool down; workers must not print tracebacks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def paint(job: PaintJob) -> dict[str, str]:
    """Draw every view of one item; returns view name -> file name inside the item's folder."""
    written = {}
    for view in job.views:
        data = _head_png(job) if view == "head" else _view_png(job, view)
        name = f"{view}.png"
        write_atomic(job.folder / name, data)
        written[view] = name
    return written


def _side(n: int) -> float:
    """Figure side in inches, rounded to half inches so that similar lengths share one figure."""
    raw = max(4.5, min(18.0, 2.8 + 0.16 * min(n, MAX_LABELS * 3)))
    return math.ceil(raw * 2) / 2


class HeadPainter:
    """One reusable head-view figure: fixed margins in inches, the image and labels swapped per item."""

    def __init__(self, side: float, dpi: int):
        self.fig = Figure(figsize=(side + 1.2, side), dpi=dpi)
        FigureCanvasAgg(self.fig)
        w, h = side + 1.2, side
        left, bottom, top, right = 1.25, 1.25, 0.4, 1.3  # inches: labels below and left, colorbar right
        self.ax = self.fig.add_axes((left / w, bottom / h, (w - left - right) / w, (h - bottom - top) / h))
        cax = self.fig.add_axes(((w - right + 0.2) / w, bottom / h, 0.15 / w, (h - bottom - top) / h))
        self.im = self.ax.imshow(np.zeros((2, 2)), cmap=CMAP, vmin=0.0, vmax=1.0, aspect="auto",
                                 interpolation="nearest")
        self.fig.colorbar(self.im, cax=cax, label="attention weight")
        self.ax.set_xticks([])
        self.ax.set_yticks([])
        self.ax.set_xlabel("attended to (key)", labelpad=62)
        self.ax.set_ylabel("attending (query)", labelpad=62)

    def png(self, matrix: np.ndarray, tokens: list[str], title: str) -> bytes:
        import io

        from PIL import Image

        from attnviz.report.labels import draw_labels

        n_q, n_k = matrix.shape
        self.im.set_data(matrix)
        self.im.set_extent((-0.5, n_k - 0.5, n_q - 0.5, -0.5))
        self.im.set_clim(0.0, float(matrix.max()) or 1.0)
        self.ax.set_title(title, fontsize=10)
        self.fig.canvas.draw()
        rgb = np.array(self.fig.canvas.buffer_rgba())[..., :3]  # (H, W, 3), a copy to draw labels into
        step = max(1, math.ceil(len(tokens) / MAX_LABELS))
        pos = list(range(0, len(tokens), step))
        families, _ = families_for(tokens)
        size = max(5.0, min(9.0, 220.0 / max(len(pos), 1)))
        draw_labels(rgb, self.ax, [(i, _cut(tokens[i])) for i in pos], tuple(families), size, self.fig.dpi)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)  # no metadata: byte-stable
        return buf.getvalue()


def _cut(token: str) -> str:
    return token if len(token) <= LABEL_CHARS else token[: LABEL_CHARS - 1] + "…"


@lru_cache(maxsize=8)
def _painter(side: float, dpi: int) -> HeadPainter:
    # One figure per size class and process: this cache is what makes the batch path fast.
    return HeadPainter(side, dpi)


def _head_png(job: PaintJob) -> bytes:
    matrix = job.weights[job.layer, job.head]  # (n, n)
    title = f"{job.title} · layer {job.layers[job.layer]} · head {job.heads[job.head]}"
    return _painter(_side(len(job.tokens)), job.dpi).png(matrix, job.tokens, title)


def _view_png(job: PaintJob, view: str) -> bytes:
    import torch

    from attnviz.maps import AttentionMaps
    from attnviz.render import figure_bytes, render_view

    n = len(job.tokens)
    maps = AttentionMaps(weights=torch.from_numpy(job.weights)[:, None], mask=torch.ones(1, n, dtype=torch.long),
                         tokens=[job.tokens], layers=job.layers, heads=job.heads, model=job.title)
    fig, _ = render_view(maps, view, layer=job.layers[job.layer], head=job.heads[job.head])
    return figure_bytes(fig, "png", dpi=job.dpi)
