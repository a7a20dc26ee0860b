"""Token labels stamped onto a drawn head-view canvas from cached glyph bitmaps.

In batch reports the same tokens recur across thousands of items; laying out and rasterising each label
through matplotlib's text engine was half the cost of a head-view PNG. Here each distinct label is
rasterised once per process (with the same font file matplotlib would pick) and then only blended in.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PAD_PT = 4.0  # gap between the axes and a label, in points (as a tick label's pad)


@lru_cache(maxsize=8)
def _font(families: tuple[str, ...], size_px: int) -> ImageFont.FreeTypeFont:
    from matplotlib import font_manager

    path = font_manager.findfont(font_manager.FontProperties(family=list(families)))
    return ImageFont.truetype(path, size_px)


@lru_cache(maxsize=8192)
def sprite(text: str, families: tuple[str, ...], size_px: int, upright: bool) -> np.ndarray:
    """Coverage (h, w) uint8 of one label; turned 90 degrees (reading upwards) unless upright."""
    font = _font(families, size_px)
    left, top, right, bottom = font.getbbox(text)
    img = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(img).text((-left, -top), text, font=font, fill=255)
    if not upright:
        img = img.transpose(Image.Transpose.ROTATE_90)
    return np.asarray(img)


def stamp(rgb: np.ndarray, alpha: np.ndarray, top: int, left: int) -> None:
    """Blend black text of coverage ``alpha`` into ``rgb`` (H, W, 3) at (top, left), clipped to the canvas."""
    h, w = alpha.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, rgb.shape[0]), min(left + w, rgb.shape[1])
    if y0 >= y1 or x0 >= x1:
        return
    a = alpha[y0 - top:y1 - top, x0 - left:x1 - left, None].astype(np.uint16)  # (h, w, 1)
    region = rgb[y0:y1, x0:x1]
    region[...] = (region.astype(np.uint16) * (255 - a) // 255).astype(np.uint8)


def draw_labels(rgb: np.ndarray, ax, keys: list[tuple[int, str]], queries: list[tuple[int, str]],
                families: tuple[str, ...], size_pt: float, dpi: float) -> None:
    """Key labels under the axes and query labels left of it, each (data position, text)."""
    size_px = max(6, round(size_pt * dpi / 72))
    pad = round(PAD_PT * dpi / 72)
    height = rgb.shape[0]
    bottom_px = height - int(round(ax.bbox.y0)) + pad  # first row under the axes
    left_px = int(round(ax.bbox.x0)) - pad  # last column left of the axes
    for i, text in keys:
        x, _ = ax.transData.transform((i, 0))
        upright = len(text) <= 2  # single characters (CJK, character tokenizers) read upright
        a = sprite(text, families, size_px, upright)
        stamp(rgb, a, bottom_px, int(round(x)) - a.shape[1] // 2)  # centred, hanging down
    for i, text in queries:
        _, y = ax.transData.transform((0, i))
        b = sprite(text, families, size_px, True)
        stamp(rgb, b, height - int(round(y)) - b.shape[0] // 2, left_px - b.shape[1])  # right-aligned


def draw_scale(rgb: np.ndarray, cax, ticks: list[tuple[float, str]], dpi: float, size_pt: float = 10.0) -> None:
    """Colour-scale labels right of the colorbar: (position 0..1 along it, text)."""
    size_px = max(6, round(size_pt * dpi / 72))
    pad = round(PAD_PT * 1.5 * dpi / 72)
    height = rgb.shape[0]
    for frac, text in ticks:
        y = cax.bbox.y0 + frac * cax.bbox.height
        a = sprite(text, ("DejaVu Sans",), size_px, True)
        stamp(rgb, a, height - int(round(y)) - a.shape[0] // 2, int(round(cax.bbox.x1)) + pad)
