"""Notebook views of AttentionMaps: the head and model views from full weights, and the long-input views
(pooled overview, curves along the positions) from per-head statistics when the weights were not kept."""

from __future__ import annotations

import math

import numpy as np

from attnviz.errors import BadInput
from attnviz.maps import AttentionMaps
from attnviz.notebook.page import MAX_VALUES, View, live, pack, picture, still

FULL_VIEWS = ("head", "model")  # need the weights
LONG_VIEWS = ("statistics", "overview", "positions")  # from the statistics (computed first from full weights)
VIEWS = FULL_VIEWS + LONG_VIEWS
BINS = 512  # points per curve along the positions: block means beyond this many positions
MAX_TOKENS = 20_000  # token strings sent for the curves' hover; longer inputs show positions only
DPI = 80  # the static picture's resolution
_CURVES = (("entropy", "row entropy (nats)"), ("sink", "share on the first token"),
           ("received", "attention received (log10)"))


def maps_view(maps: AttentionMaps, view: str | None = None, *, layer: int = -1, head: int | None = 0,
              example: int = 0, stack: str = "encoder", max_bytes: int) -> View:
    """One example of ``maps`` as a notebook view; ``view`` None: head and model views from full weights, the
    statistics views when only statistics were kept. ``head`` None is the mean of the heads."""
    if view is None:
        view = "both" if maps.weights is not None else "statistics"
    elif view not in VIEWS:
        raise BadInput(f"unknown view {view!r} for attention maps; choose one of {', '.join(VIEWS)}")
    if view in ("both", *FULL_VIEWS) and maps.weights is None:
        raise BadInput(f"view {view!r} needs full weights; these maps hold per-head statistics only: "
                       f"choose one of {', '.join(LONG_VIEWS)}")
    if not 0 <= example < len(maps.tokens):
        raise BadInput(f"example {example} is out of range; valid: 0-{len(maps.tokens) - 1}")
    li = maps.layer_index(layer)
    hi = -1 if head is None else maps.head_index(head)
    if view in LONG_VIEWS:
        return _statistics(maps.with_statistics(), view, li, hi, example, max_bytes)
    return _full(maps, view, li, hi, example, stack, max_bytes)


def _summary(maps: AttentionMaps) -> str:
    shape = "statistics only" if maps.weights is None else "x".join(str(s) for s in maps.weights.shape)
    size = f"{len(maps.layers)} layers x {len(maps.heads)} heads"
    return f"AttentionMaps({maps.model or 'model'}, {maps.kind}, {size}, {shape})"


def _full(maps: AttentionMaps, view: str, li: int, hi: int, example: int, stack: str, max_bytes: int) -> View:
    from attnviz.render.colors import ramp_hex
    from attnviz.render.heatmap import select, view_bytes
    from attnviz.render.style import CMAP

    sel = select(maps, example=example, stack=stack)
    weights = sel.weights  # (L, H, Q, K)
    n_l, n_h, q, k = weights.shape
    kind = "model" if view == "model" else "head" if hi >= 0 else "mean"
    png = view_bytes(sel, kind, li, max(hi, 0), "png", dpi=DPI)
    title = f"{sel.title} · example {example} · {q} x {k} tokens"
    notes = [sel.warning] if sel.warning else []
    keep = min(n_l, MAX_VALUES // max(1, n_h * q * k))
    if keep == 0:
        note = (f"one layer holds {n_h * q * k:,} values, more than the {MAX_VALUES:,} a notebook view sends; "
                "this is a picture (attnviz.show(maps, layer=..., head=...) picks another, "
                "view='statistics' the long views)")
        return still(title, picture(png, title), png, [*notes, note], _summary(maps))
    start = max(0, min(li, n_l - keep))  # a window of layers that holds the chosen one
    if keep < n_l:
        notes.append(f"layers {sel.layers[start]}-{sel.layers[start + keep - 1]} of {n_l} sent (size limit); "
                     "attnviz.show(maps, layer=...) sends others")
    kept = weights[start:start + keep]  # (l, H, Q, K)
    data = {"kind": "attention", "cmap": ramp_hex(CMAP), "view": view, "queries": sel.queries, "keys": sel.keys,
            "layers": sel.layers[start:start + keep], "heads": sel.heads, "layer": li - start, "head": hi,
            "packs": {"att": pack(kept.reshape(keep * n_h, q * k))}}
    return live(title, data, png, notes, text=_summary(maps), max_bytes=max_bytes,
                too_big="this is a picture of one head (attnviz.show(maps, layer=..., head=...) picks another)")


def _pool(values: np.ndarray, bins: int) -> np.ndarray:
    """(..., n) -> (..., bins) block means over consecutive positions (bins <= n)."""
    n = values.shape[-1]
    edges = np.ceil(np.arange(bins + 1) * n / bins).astype(np.int64)  # (bins + 1,) first position of each block
    total = np.concatenate([np.zeros((*values.shape[:-1], 1)), np.cumsum(values, axis=-1, dtype=np.float64)], axis=-1)
    return (total[..., edges[1:]] - total[..., edges[:-1]]) / np.diff(edges)


def _curves(maps: AttentionMaps, example: int, real: np.ndarray) -> tuple[dict, dict]:
    """The packed curves (layer * head, bins) and what the script needs to label them."""
    n = len(real)
    bins = min(BINS, n)
    packs = {}
    for name, _ in _CURVES:
        values = maps.stats[name][:, example].float().numpy()[:, :, real]  # (L, H, n)
        pooled = _pool(values, bins)  # (L, H, bins)
        if name == "received":  # the first token often receives tens of times what the others do
            pooled = np.log10(np.maximum(pooled, 1e-9))
        packs[name] = pack(pooled.reshape(-1, bins))
    tokens = [maps.tokens[example][i] for i in real] if n <= MAX_TOKENS else None
    return packs, {"n": n, "bins": bins, "tokens": tokens, "labels": [list(c) for c in _CURVES]}


def _statistics(maps: AttentionMaps, view: str, li: int, hi: int, example: int, max_bytes: int) -> View:
    from attnviz.render.colors import ramp_hex
    from attnviz.render.long import long_view
    from attnviz.render.output import figure_bytes
    from attnviz.render.style import CMAP

    real = np.flatnonzero(maps.mask[example].numpy() > 0)
    overview = maps.stats["overview"][:, example].float().numpy()  # (L, H, Rq, Rk)
    n_l, n_h, rq, rk = overview.shape
    packs, positions = {}, None
    if view in ("statistics", "overview"):
        packs["overview"] = pack(overview.reshape(n_l * n_h, rq * rk))
    if view in ("statistics", "positions"):
        curves, positions = _curves(maps, example, real)
        packs.update(curves)
    head = max(hi, 0)
    drawn = "positions" if view == "positions" else "overview"
    png = figure_bytes(long_view(maps, drawn, layer=maps.layers[li], head=maps.heads[head], example=example), "png", dpi=DPI)
    title = f"{maps.model or 'model'} · example {example} · {len(real)} positions · per-head statistics"
    data = {"kind": "statistics", "cmap": ramp_hex(CMAP), "layers": list(maps.layers), "heads": list(maps.heads),
            "layer": li, "head": hi, "grid": [rq, rk], "qlen": int(maps.stats["entropy"].shape[-1]),
            "klen": int(maps.stats["received"].shape[-1]), "positions": positions, "packs": packs}
    notes = []
    if math.prod(overview.shape) > MAX_VALUES:
        notes.append("the overview is large; pass a smaller overview size to capture for a lighter view")
    return live(title, data, png, notes, text=_summary(maps), max_bytes=max_bytes,
                too_big="this is a picture of one head's overview (attnviz.show(maps, layer=..., head=...) picks another)")
