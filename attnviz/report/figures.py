"""Heatmap files: `attnviz heatmap`'s PNG, SVG or PDF files and the batch report's per-item PNGs.

Both draw through one call, attnviz.render.heatmap.view_bytes, so the same input, layer and head give the
same bytes from either command. Importing this module loads no torch (report workers paint with it).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from attnviz.errors import BadInput
from attnviz.io import DEFAULT_DIR, check_writable, make_folder, slug, write_atomic
from attnviz.render.output import FORMATS
from attnviz.render.style import DPI

if TYPE_CHECKING:
    from attnviz.maps import AttentionMaps


def output_paths(maps: AttentionMaps, view: str, fmt: str, out: Path | None, texts: list[str] | None = None) -> list[Path]:
    """One path per example: ``out`` (numbered when there are several), or <text>-<view>.<fmt> inside
    ``out`` when it is a folder (an existing one, or a name without a suffix), by default outputs/."""
    n = len(maps.tokens)
    folder = DEFAULT_DIR if out is None else Path(out)
    if out is not None and folder.suffix and not folder.is_dir():
        if n == 1:
            return [folder]
        return [folder.with_name(f"{folder.stem}-{i + 1}{folder.suffix}") for i in range(n)]
    make_folder(folder)
    if texts is None or len(texts) != n:
        texts = [" ".join(t for t, m in zip(toks, mask) if m) for toks, mask in zip(maps.tokens, maps.mask.tolist())]
    return [folder / f"{slug(text)}-{view}.{fmt}" for text in texts]


def pick_format(fmt: str | None, out: Path | None) -> str:
    """--format, else the suffix of --out, else png; a suffix that is no figure format is refused."""
    suffix = Path(out).suffix.lstrip(".").lower() if out is not None and not Path(out).is_dir() else ""
    if suffix and suffix not in FORMATS:
        raise BadInput(f"cannot tell the figure format from {out}; end --out with .png, .svg or .pdf, "
                       "or give a folder")
    if fmt is not None and fmt not in FORMATS:
        raise BadInput(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}")
    if fmt is not None and suffix and fmt != suffix:
        raise BadInput(f"--out {out} does not match --format {fmt}")
    return fmt or suffix or "png"


def write_heatmaps(maps: AttentionMaps, *, view: str = "head", layer: int = -1, head: int = 0,
                   stack: str = "encoder", hide_special: bool = False, fmt: str | None = None,
                   out: Path | None = None, texts: list[str] | None = None, scale: str = "auto",
                   clip: float | None = None) -> tuple[list[Path], list[str]]:
    """Render every example of ``maps``; returns the written paths and any warnings. ``scale`` and ``clip``
    colour the head view (render/scale.py)."""
    from attnviz.render import VIEWS, select, view_bytes
    from attnviz.render.long import LONG_VIEWS

    if view in LONG_VIEWS:
        return _write_long(maps, view, layer, head, pick_format(fmt, out), out, texts), []
    VIEWS.get(view)
    if maps.weights is None or maps.weights.shape[-2] != maps.weights.shape[-1]:
        kept = "" if maps.weights is None else f" and the full rows of queries {maps.query_start}-" \
            f"{maps.query_start + maps.weights.shape[-2] - 1}"
        raise BadInput(f"these maps hold per-head statistics{kept}, not every full map (an input too long to keep "
                       f"L x L): draw them with --view {', '.join(LONG_VIEWS)}, or capture with --keep full")
    fmt = pick_format(fmt, out)
    paths = output_paths(maps, view, fmt, out, texts)
    for path in paths:
        check_writable(path)
    li, hi = maps.layer_index(layer), (maps.head_index(head) if view == "head" else 0)
    rendered, warnings = [], []
    for example, path in enumerate(paths):
        sel = select(maps, example=example, stack=stack, hide_special=hide_special)
        sel.scale, sel.clip = scale, clip
        rendered.append((path, view_bytes(sel, view, li, hi, fmt, DPI)))
        if sel.warning and sel.warning not in warnings:
            warnings.append(sel.warning)
    for path, data in rendered:  # every figure rendered before anything is written
        write_atomic(path, data)
    return [p for p, _ in rendered], warnings


def _write_long(maps: AttentionMaps, view: str, layer: int, head: int, fmt: str, out: Path | None,
                texts: list[str] | None) -> list[Path]:
    """A long-input view (render/long.py) of every example, all rendered before anything is written."""
    from attnviz.render.long import long_view
    from attnviz.render.output import figure_bytes

    paths = output_paths(maps, view, fmt, out, texts)
    for path in paths:
        check_writable(path)
    rendered = [(p, figure_bytes(long_view(maps, view, layer=layer, head=head, example=i), fmt, dpi=DPI))
                for i, p in enumerate(paths)]
    return [write_atomic(p, data) for p, data in rendered]


@dataclass(frozen=True)
class PaintJob:
    """The PNGs of one batch-report item, drawn in a worker process from plain arrays."""

    folder: Path | None  # the item's own folder (created, inside the output folder); None: ``draw`` gives the bytes
    views: tuple[str, ...]  # view names to draw, e.g. ("head", "model")
    weights: np.ndarray  # (L, H, n, n) float32, real tokens only
    tokens: list[str]  # the n real tokens
    layers: list[int]  # model layer number of each entry of weights' first axis
    heads: list[int]  # model head number of each entry of weights' second axis
    layer: int  # position along weights' first axis for the head view
    head: int  # position along weights' second axis for the head view
    title: str  # figure title (model name)
    dpi: int = DPI  # PNG resolution


def init_worker() -> None:
    """Ctrl-C is handled by the parent, which shuts the pool down; workers must not print tracebacks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def draw(job: PaintJob) -> dict[str, bytes]:
    """Draw every view of one item as PNG: view name -> bytes (for an output folder the caller writes to)."""
    from attnviz.render.heatmap import Selection, view_bytes

    sel = Selection(job.weights, job.tokens, job.tokens, list(job.layers), list(job.heads), job.title)
    return {view: view_bytes(sel, view, job.layer, job.head if view == "head" else 0, "png", job.dpi)
            for view in job.views}


def paint(job: PaintJob) -> dict[str, str]:
    """Draw every view of one item as PNG into ``job.folder``; returns view name -> file name in that folder."""
    written = {}
    for view, png in draw(job).items():
        write_atomic(job.folder / f"{view}.png", png)
        written[view] = f"{view}.png"
    return written
