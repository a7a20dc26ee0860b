"""Heatmap files: render a view of AttentionMaps and write it as PNG, SVG or PDF."""

from __future__ import annotations

from pathlib import Path

from attnviz.errors import BadInput
from attnviz.maps import AttentionMaps
from attnviz.render import figure_bytes, render_view
from attnviz.render.output import FORMATS
from attnviz.io import DEFAULT_DIR, check_writable, make_folder, slug, write_atomic


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
                   out: Path | None = None, texts: list[str] | None = None) -> tuple[list[Path], list[str]]:
    """Render every example of ``maps``; returns the written paths and any warnings."""
    fmt = pick_format(fmt, out)
    paths = output_paths(maps, view, fmt, out, texts)
    for path in paths:
        check_writable(path)
    rendered, warnings = [], []
    for example, path in enumerate(paths):
        fig, warning = render_view(maps, view, layer=layer, head=head, example=example, stack=stack,
                                   hide_special=hide_special)
        rendered.append((path, figure_bytes(fig, fmt)))
        if warning and warning not in warnings:
            warnings.append(warning)
    for path, data in rendered:  # every figure rendered before anything is written
        write_atomic(path, data)
    return [p for p, _ in rendered], warnings
