"""CAM files: per image an overlay PNG at the original size and a panel (PNG/SVG/PDF), optionally the
raw map as .npy; a contact sheet for several images. Everything is rendered before anything is written.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

from attnviz.attribution.cam import CamResult
from attnviz.errors import BadInput
from attnviz.render import figure_bytes
from attnviz.render.output import FORMATS
from attnviz.render.overlay import check_colormap, contact_sheet, heads_figure, overlay, panel, title_lines
from attnviz.io import inside, make_folder, write_atomic


def stems(names: list[str]) -> list[str]:
    """File-name-safe, unique stems from the input names (a.png and a.jpg -> a, a-2)."""
    used: set[str] = set()
    out = []
    for name in names:
        stem = re.sub(r"[^\w.-]+", "-", Path(str(name)).stem, flags=re.UNICODE).strip("-.") or "image"
        candidate, count = stem, 1
        while candidate.lower() in used:  # a-2.png and a second a.png must not share a name
            count += 1
            candidate = f"{stem}-{count}"
        used.add(candidate.lower())
        out.append(candidate)
    return out


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _npy(values: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, values.astype(np.float32), allow_pickle=False)
    return buf.getvalue()


def render_cam(result: CamResult, images: list[Image.Image], names: list[str], *, model: str, fmt: str = "png",
               colormap: str = "jet", alpha: float = 0.5, save_map: bool = False) -> dict[str, bytes]:
    """File name -> bytes for every file of one run."""
    if fmt not in FORMATS:
        raise BadInput(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}")
    check_colormap(colormap)
    files: dict[str, bytes] = {}
    overlays, captions = [], []
    for i, (image, stem) in enumerate(zip(images, stems(names))):
        grid_map = result.maps[i].numpy()
        box = result.boxes[i] if result.boxes else None
        over = overlay(image, grid_map, box, colormap=colormap, alpha=alpha)
        files[f"{stem}-{result.method}.png"] = _png(over)
        title = title_lines(result.target[i], result.top[i], result.method, model)
        files[f"{stem}-{result.method}-panel.{fmt}"] = figure_bytes(
            panel(image, grid_map, over, title, box, colormap=colormap), fmt)
        if result.heads is not None:
            fig = heads_figure(image, result.heads[i].numpy(), f"{title.splitlines()[0]} · layer {result.params.get('layer')}",
                               box, colormap=colormap, alpha=alpha)
            files[f"{stem}-{result.method}-grid.{fmt}"] = figure_bytes(fig, fmt)
        if save_map:
            files[f"{stem}-{result.method}.npy"] = _npy(grid_map)
        overlays.append(over)
        captions.append(f"{Path(str(names[i])).name}\n{result.target[i]}")
    if len(images) > 1:
        sheet = contact_sheet(overlays, captions, f"{model} · {result.method} · {len(images)} images")
        files[f"contact-sheet-{result.method}.{fmt}"] = figure_bytes(sheet, fmt)
    return files


def write_files(files: dict[str, bytes], out_dir: Path) -> list[Path]:
    """Write every file inside ``out_dir`` (created if missing); names never leave it."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInput(f"--out {out_dir} is a file; give a folder")
    targets = [inside(out_dir, name) for name in files]  # all checked before the first write
    make_folder(out_dir)
    return [write_atomic(path, data) for path, data in zip(targets, files.values())]
