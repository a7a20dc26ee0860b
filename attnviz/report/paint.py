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
from attnviz.io import write_atomic

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
    """One reusable head-view figure, blitted: everything that is the same for every item (frame, axis
    titles, the colour ramp) is drawn once; per item only the heatmap and title are drawn, and the token
    and colour-scale labels are stamped from cached glyph bitmaps."""

    def __init__(self, side: float, dpi: int):
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        self.fig = Figure(figsize=(side + 1.2, side), dpi=dpi)
        FigureCanvasAgg(self.fig)
        w, h = side + 1.2, side
        left, bottom, top, right = 1.25, 1.25, 0.4, 1.3  # inches: labels below and left, colorbar right
        self.ax = self.fig.add_axes((left / w, bottom / h, (w - left - right) / w, (h - bottom - top) / h))
        self.cax = self.fig.add_axes(((w - right + 0.2) / w, bottom / h, 0.15 / w, (h - bottom - top) / h))
        self.im = self.ax.imshow(np.zeros((2, 2)), cmap=CMAP, vmin=0.0, vmax=1.0, aspect="auto",
                                 interpolation="nearest", animated=True)
        # The ramp is drawn once on a 0..1 scale; its five tick labels are the item's scale times 0, 1/4, ..., 1.
        ramp = self.fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), CMAP), cax=self.cax, ticks=CBAR_TICKS)
        ramp.set_label("attention weight", labelpad=38)
        self.cax.tick_params(labelright=False)
        self.ax.set_xticks([])
        self.ax.set_yticks([])
        self.ax.set_xlabel("attended to (key)", labelpad=62)
        self.ax.set_ylabel("attending (query)", labelpad=62)
        self.title = self.ax.set_title("", fontsize=10, animated=True)
        self.fig.canvas.draw()
        self.background = self.fig.canvas.copy_from_bbox(self.fig.bbox)

    def png(self, matrix: np.ndarray, tokens: list[str], title: str) -> bytes:
        import io

        from PIL import Image

        from attnviz.render.labels import draw_labels, draw_scale

        n_q, n_k = matrix.shape
        top = nice_ceiling(float(matrix.max()))
        self.im.set_data(matrix)
        self.im.set_extent((-0.5, n_k - 0.5, n_q - 0.5, -0.5))
        self.ax.set_xlim(-0.5, n_k - 0.5)
        self.ax.set_ylim(n_q - 0.5, -0.5)
        self.im.set_clim(0.0, top)
        self.title.set_text(title)
        canvas = self.fig.canvas
        canvas.restore_region(self.background)
        self.ax.draw_artist(self.im)
        self.ax.draw_artist(self.title)
        rgb = np.array(canvas.buffer_rgba())[..., :3]  # (H, W, 3), a copy to stamp labels into
        step = max(1, math.ceil(len(tokens) / MAX_LABELS))
        pos = list(range(0, len(tokens), step))
        families, _ = families_for(tokens)
        size = max(5.0, min(9.0, 220.0 / max(len(pos), 1)))
        draw_labels(rgb, self.ax, [(i, _cut(tokens[i])) for i in pos], tuple(families), size, self.fig.dpi)
        draw_scale(rgb, self.cax, [(t, f"{t * top:.3g}") for t in CBAR_TICKS], self.fig.dpi)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)  # no metadata: byte-stable
        return buf.getvalue()


CBAR_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)
# Mantissas whose quarters are short decimals (0.3, 0.45 no; 0.3, 0.4, 0.6 yes), so the scale reads cleanly.
_NICE = (1.0, 1.2, 1.6, 2.0, 2.4, 3.2, 4.0, 4.8, 6.0, 8.0, 10.0)


def nice_ceiling(value: float) -> float:
    """The smallest 'nice' number >= value (at most a third above it); 1.0 for an all-zero matrix."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exp = 10.0 ** math.floor(math.log10(value))
    return next(m * exp for m in _NICE if m * exp >= value * (1 - 1e-6))  # float32 maxima


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
