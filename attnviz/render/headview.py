"""THE head view: one layer and head as a heatmap, queries down and keys across, with a colour scale.

`attnviz heatmap --view head`, the batch report's head.png and the snapshot drift panels all draw here, so
the same matrix, labels and title give the same bytes whichever command asked. The PNG is blitted: text is
the cost of a PNG and a new figure spends most of its time on layout (DESIGN.md section 3), so one figure per
size class, colour map and dpi is drawn once per process (frame, axis titles, the colour ramp); per picture
only the heatmap and its title are drawn, and the token and scale labels are stamped from cached glyph
bitmaps (render/labels.py). SVG and PDF get head_figure: the same layout as a Figure, its labels as text.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from attnviz.render.fonts import families_for
from attnviz.render.scale import Colour, colour
from attnviz.render.style import CMAP, DIFF_CMAP, DPI, MAX_INCHES, MAX_LABELS, cut_label, label_step

CBAR_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)  # fractions of the colour scale that carry a label
# Mantissas whose quarters are short decimals (0.3, 0.45 no; 0.3, 0.4, 0.6 yes), so the scale reads cleanly.
_NICE = (1.0, 1.2, 1.6, 2.0, 2.4, 3.2, 4.0, 4.8, 6.0, 8.0, 10.0)
# Fixed margins in inches (left, bottom, top, right): labels below and left, the colour scale right.
LEFT, BOTTOM, TOP, RIGHT = 1.25, 1.25, 0.4, 1.3
EXTRA_WIDTH = 1.2  # the figure is this much wider than tall: room for the colour scale
TITLE_GAP = 62 / 72  # inches from the axes to the axis titles, beyond the longest (cut) label


@dataclass(frozen=True)
class HeadView:
    """What one head-view picture shows."""

    matrix: np.ndarray  # (Q, K) attention of one layer and head
    queries: Sequence[str]  # Q labels, down the left
    keys: Sequence[str]  # K labels, along the bottom
    title: str  # e.g. "minilm · layer 5 · head 0"
    top: float | None = None  # colour-scale maximum; None: a nice number just above the matrix's maximum
    cmap: str = CMAP
    scale_label: str = "attention weight"
    scale: str = "auto"  # auto, linear, log or rank (render/scale.py)
    clip: float | None = None  # a percentile of the weights as the scale's top (linear and log)


def nice_ceiling(value: float) -> float:
    """The smallest 'nice' number >= value (at most a third above it); 1.0 for an all-zero matrix."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exp = 10.0 ** math.floor(math.log10(value))
    return next(m * exp for m in _NICE if m * exp >= value * (1 - 1e-6))  # float32 maxima


def side_inches(n: int) -> float:
    """Figure height for n positions, in half inches so that similar lengths share one blitted figure."""
    raw = max(4.5, 2.8 + 0.16 * min(n, MAX_LABELS * 3))
    return min(math.ceil(raw * 2) / 2, MAX_INCHES - EXTRA_WIDTH - 0.3)  # whole figure within MAX_INCHES


def _frame(side: float, dpi: int, cmap: str, scale_label: str):
    """The figure, its heatmap axes and colour-scale axes, and the fixed texts; shared by PNG and vector."""
    w, h = side + EXTRA_WIDTH, side
    fig = Figure(figsize=(w, h), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((LEFT / w, BOTTOM / h, (w - LEFT - RIGHT) / w, (h - BOTTOM - TOP) / h))
    cax = fig.add_axes(((w - RIGHT + 0.2) / w, BOTTOM / h, 0.15 / w, (h - BOTTOM - TOP) / h))
    fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), cmap), cax=cax, ticks=CBAR_TICKS)
    cax.tick_params(labelright=False)
    ax.set_xticks([])
    ax.set_yticks([])
    middle = (LEFT + (w - LEFT - RIGHT) / 2) / w
    fig.text(middle, (BOTTOM - TITLE_GAP) / h, "attended to (key)", ha="center", va="top")
    fig.text((LEFT - TITLE_GAP) / w, (BOTTOM + (h - BOTTOM - TOP) / 2) / h, "attending (query)",
             ha="right", va="center", rotation=90)
    fig.text((w - RIGHT + 0.35 + 38 / 72) / w, (BOTTOM + (h - BOTTOM - TOP) / 2) / h, scale_label,
             ha="left", va="center", rotation=90)
    return fig, ax, cax


def _labels(tokens: Sequence[str]) -> list[tuple[int, str]]:
    return [(i, cut_label(tokens[i])) for i in range(0, len(tokens), label_step(len(tokens)))]


def _label_size(view: HeadView) -> float:
    shown = max(len(_labels(view.queries)), len(_labels(view.keys)))
    return max(5.0, min(9.0, 220.0 / max(shown, 1)))


class HeadPainter:
    """One reusable head-view figure, blitted (see the module docstring)."""

    def __init__(self, side: float, dpi: int, cmap: str, scale_label: str):
        self.fig, self.ax, self.cax = _frame(side, dpi, cmap, scale_label)
        self.im = self.ax.imshow(np.zeros((2, 2)), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto",
                                 interpolation="nearest", animated=True)
        self.title = self.ax.set_title("", fontsize=10, animated=True)
        self.fig.canvas.draw()
        self.background = self.fig.canvas.copy_from_bbox(self.fig.bbox)

    def rgb(self, view: HeadView, shown: Colour | None = None) -> np.ndarray:
        """The picture as (height, width, 3) uint8, coloured as ``shown`` says (default: the view's scale)."""
        from attnviz.render.labels import draw_labels, draw_scale

        shown = shown if shown is not None else colour_of(view)[0]
        n_q, n_k = view.matrix.shape
        top = shown.top
        self.im.set_data(shown.values)
        self.im.set_extent((-0.5, n_k - 0.5, n_q - 0.5, -0.5))
        self.ax.set_xlim(-0.5, n_k - 0.5)
        self.ax.set_ylim(n_q - 0.5, -0.5)
        self.im.set_clim(0.0, top)
        self.title.set_text(view.title)
        canvas = self.fig.canvas
        canvas.restore_region(self.background)
        with warnings.catch_warnings():  # a missing glyph in a title is not worth a line per glyph
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")
            self.ax.draw_artist(self.im)
            self.ax.draw_artist(self.title)
        rgb = np.array(canvas.buffer_rgba())[..., :3]  # (H, W, 3), a copy to stamp labels into
        families, _ = families_for(list(view.queries) + list(view.keys))
        draw_labels(rgb, self.ax, _labels(view.keys), _labels(view.queries), tuple(families),
                    _label_size(view), self.fig.dpi)
        draw_scale(rgb, self.cax, list(zip(CBAR_TICKS, shown.ticks)), self.fig.dpi)
        return rgb


@lru_cache(maxsize=8)
def painter(side: float, dpi: int = DPI, cmap: str = CMAP, scale_label: str = "attention weight") -> HeadPainter:
    """One figure per size class and process: this cache is what makes batch work fast."""
    return HeadPainter(side, dpi, cmap, scale_label)


def colour_of(view: HeadView) -> tuple[Colour, str]:
    """The view's values on its colour scale, and the colour bar's label (with what the scale leaves out)."""
    shown = colour(view.matrix, view.scale, view.clip, view.top, nice_ceiling, CBAR_TICKS)
    return shown, f"{view.scale_label} ({shown.note})" if shown.note else view.scale_label


def head_rgb(view: HeadView, dpi: int = DPI) -> np.ndarray:
    """The head view as (height, width, 3) uint8."""
    side = side_inches(max(view.matrix.shape))
    shown, label = colour_of(view)
    return painter(side, dpi, view.cmap, label).rgb(view, shown)


def png_bytes(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG, without metadata: the same pixels give the same bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def head_png(view: HeadView, dpi: int = DPI) -> bytes:
    """The head view as PNG bytes."""
    return png_bytes(head_rgb(view, dpi))


def head_figure(view: HeadView) -> Figure:
    """The head view as a matplotlib Figure (for SVG and PDF): the PNG's layout, labels as text."""
    side = side_inches(max(view.matrix.shape))
    shown, label = colour_of(view)
    fig, ax, cax = _frame(side, DPI, view.cmap, label)
    ax.imshow(shown.values, cmap=view.cmap, vmin=0.0, vmax=shown.top, aspect="auto", interpolation="nearest")
    families, _ = families_for(list(view.queries) + list(view.keys))
    size = _label_size(view)
    keys, queries = _labels(view.keys), _labels(view.queries)
    ax.set_xticks([i for i, _ in keys], [t for _, t in keys], fontsize=size, fontfamily=families)
    for label in ax.get_xticklabels():  # single characters (CJK, character tokenizers) read upright
        label.set_rotation(0 if len(label.get_text()) <= 2 else 90)
    ax.set_yticks([i for i, _ in queries], [t for _, t in queries], fontsize=size, fontfamily=families)
    ax.tick_params(length=0)
    cax.tick_params(labelright=True)
    cax.set_yticks(CBAR_TICKS, shown.ticks)
    ax.set_title(view.title, fontsize=10)
    return fig


def drift_png(base: np.ndarray, cur: np.ndarray, queries: Sequence[str], keys: Sequence[str], title: str,
              dpi: int = 80) -> bytes:
    """baseline | current | |difference| of one head (each (Q, K)) side by side, as one PNG.

    Baseline and current share one colour scale; the difference has its own, in a power of ten that keeps
    its labels short (differences are often around 1e-3).
    """
    base, cur = np.asarray(base, dtype=np.float32), np.asarray(cur, dtype=np.float32)
    diff = np.abs(cur - base)  # (Q, K)
    exp = math.floor(math.log10(float(diff.max()))) if float(diff.max(initial=0.0)) > 0 else 0
    top = nice_ceiling(max(float(base.max(initial=0.0)), float(cur.max(initial=0.0))))
    name = f"|difference| (x 1e{exp})" if exp else "|difference|"
    views = [HeadView(base, queries, keys, f"{title} · baseline", top),
             HeadView(cur, queries, keys, f"{title} · current", top),
             HeadView(diff / 10.0**exp, queries, keys, f"{title} · {name}", cmap=DIFF_CMAP, scale_label=name,
                      scale="linear")]
    return png_bytes(np.concatenate([head_rgb(v, dpi) for v in views], axis=1))  # (H, 3W, 3)
