"""Heatmap files: render a view of AttentionMaps and write it as PNG, SVG or PDF."""

from __future__ import annotations

from pathlib import Path

from attnviz.errors import BadInput
from attnviz.maps import AttentionMaps
from attnviz.render import figure_bytes, render_view
from attnviz.render.output import FORMATS
from attnviz.report.files import DEFAULT_DIR, check_writable, slug, write_atomic


def output_paths(maps: AttentionMaps, view: str, fmt: str, out: Path | None, texts: list[str] | None = None) -> list[Path]:
    """One path per example: ``out`` (numbered when there are several) or outputs/<text>-<view>.<fmt>."""
    n = len(maps.tokens)
    if out is not None:
        out = Path(out)
        if n == 1:
            return [out]
        return [out.with_name(f"{out.stem}-{i + 1}{out.suffix}") for i in range(n)]
    DEFAULT_DIR.mkdir(exist_ok=True)
    if texts is None or len(texts) != n:
        texts = [" ".join(t for t, m in zip(toks, mask) if m) for toks, mask in zip(maps.tokens, maps.mask.tolist())]
    return [DEFAULT_DIR / f"{slug(text)}-{view}.{fmt}" for text in texts]


def pick_format(fmt: str | None, out: Path | None) -> str:
    if fmt is None:
        suffix = Path(out).suffix.lstrip(".").lower() if out is not None else ""
        fmt = suffix if suffix in FORMATS else "png"
    if fmt not in FORMATS:
        raise BadInput(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}")
    return fmt


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
