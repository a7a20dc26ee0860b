"""CAM pictures: the overlay at the image's own size, the original | map | overlay panel, the head grid
and the contact sheet of a folder. Pure: images and arrays in, PIL images or matplotlib Figures out.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image

from attnviz.errors import BadInput
from attnviz.images import to_pixels
from attnviz.render.fonts import families_for

THUMB = 256  # longest side of an image drawn inside a figure; the overlay file keeps the full size


def check_colormap(name: str) -> str:
    if name not in colormaps:
        common = "jet, inferno, magma, viridis, turbo, hot, coolwarm"
        raise BadInput(f"unknown colormap {name!r}; try one of {common} (any matplotlib colormap name)")
    return name


@lru_cache(maxsize=8)
def _lut(colormap: str) -> np.ndarray:
    return (colormaps[check_colormap(colormap)](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)  # (256, 3)


def colorize(values: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """(h, w) in [0, 1] -> uint8 (h, w, 3)."""
    return _lut(colormap)[np.clip(np.round(values * 255), 0, 255).astype(np.uint8)]


def overlay(image: Image.Image, grid_map: np.ndarray, box=None, *, colormap: str = "jet",
            alpha: float = 0.5) -> Image.Image:
    """The map upsampled onto the region the model saw, blended over the image at its own size."""
    if not 0.0 <= alpha <= 1.0:
        raise BadInput(f"--alpha must be in [0, 1], not {alpha}")
    pixels = to_pixels(grid_map, image.size, box)  # (H, W)
    heat = colorize(pixels, colormap).astype(np.float32)  # (H, W, 3)
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    if box is not None:  # outside the model's view the image stays as it is
        seen = np.zeros(pixels.shape, dtype=np.float32)
        l, t, r, b = (int(round(v)) for v in box)
        seen[t:b, l:r] = 1.0
        weight = alpha * seen[..., None]  # (H, W, 1)
    else:
        weight = alpha
    blended = base * (1.0 - weight) + heat * weight
    return Image.fromarray(np.clip(np.round(blended), 0, 255).astype(np.uint8), "RGB")


def _thumb(image: Image.Image) -> Image.Image:
    scale = THUMB / max(image.size)
    if scale >= 1.0:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _bare(ax, caption: str, families) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(caption, fontsize=8, fontfamily=families)


def title_lines(target: str, top: list[tuple[str, float]], method: str, model: str) -> str:
    """'model · method · target: X' over 'A 0.91 · B 0.05 · C 0.02'."""
    head = f"{model} · {method} · target: {target}"
    if not top:
        return head
    return head + "\n" + "  ·  ".join(f"{label} {prob:.2f}" for label, prob in top)


def panel(image: Image.Image, grid_map: np.ndarray, over: Image.Image, title: str, box=None, *,
          colormap: str = "jet") -> Figure:
    """original | map | overlay in one row, titled with the target and the top-k classes."""
    aspect = image.height / image.width
    cell = 3.0
    fig = Figure(figsize=(3 * cell + 0.6, cell * min(max(aspect, 0.4), 2.0) + 0.9), layout="constrained")
    axes = fig.subplots(1, 3)
    families, _ = families_for([title])
    thumb = _thumb(image)
    axes[0].imshow(thumb)
    _bare(axes[0], "original", families)
    shown = axes[1].imshow(to_pixels(grid_map, thumb.size, _scaled(box, image, thumb)), cmap=colormap,
                           vmin=0.0, vmax=1.0)
    _bare(axes[1], f"map ({grid_map.shape[0]}x{grid_map.shape[1]} patches)", families)
    axes[2].imshow(_thumb(over))
    _bare(axes[2], "overlay", families)
    fig.colorbar(shown, ax=axes[1:], shrink=0.7, label="relevance")
    fig.suptitle(title, fontsize=9, fontfamily=families)
    return fig


def _scaled(box, image: Image.Image, thumb: Image.Image):
    if box is None:
        return None
    sx, sy = thumb.width / image.width, thumb.height / image.height
    return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


def heads_figure(image: Image.Image, head_maps: np.ndarray, title: str, box=None, *, colormap: str = "jet",
                 alpha: float = 0.5) -> Figure:
    """One overlay per head (head_maps (H, gh, gw)) in a grid."""
    n = head_maps.shape[0]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(cols * 1.9, rows * 1.9 + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    thumb = _thumb(image)
    families, _ = families_for([title])
    for h, ax in enumerate(axes.flat):
        if h >= n:
            ax.axis("off")
            continue
        ax.imshow(overlay(thumb, head_maps[h], _scaled(box, image, thumb), colormap=colormap, alpha=alpha))
        _bare(ax, f"head {h}", families)
    fig.suptitle(title, fontsize=9, fontfamily=families)
    return fig


def contact_sheet(overlays: list[Image.Image], captions: list[str], title: str) -> Figure:
    """Every overlay of a folder as a thumbnail with its file name and target."""
    n = len(overlays)
    cols = min(8, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    aspect = min(max(float(np.mean([im.height / im.width for im in overlays])), 0.3), 3.0)
    fig = Figure(figsize=(cols * 1.8, rows * (1.8 * aspect + 0.4) + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    families, _ = families_for([title, *captions])
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(_thumb(overlays[i]))
        _bare(ax, captions[i], families)
        ax.title.set_fontsize(6.5)
    fig.suptitle(title, fontsize=10, fontfamily=families)
    return fig
