"""Attention heatmaps from AttentionMaps: the head, layer, model and mean views.

The head view is render/headview.py's (a blitted PNG, or a Figure for SVG/PDF); view_bytes is the one call
that both `attnviz heatmap` and the batch report make, so the same selection gives the same bytes.
Importing this module loads no torch: report workers draw from numpy arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from attnviz.errors import BadInput
from attnviz.registry import Registry
from attnviz.render.fonts import families_for
from attnviz.render.headview import HeadView, head_figure, head_png
from attnviz.render.output import figure_bytes
from attnviz.render.style import CMAP, DPI, MAX_INCHES, cut_label, label_step

if TYPE_CHECKING:
    import torch

    from attnviz.maps import AttentionMaps

# name -> fn(Selection, layer index, head index) -> Figure
VIEWS: Registry = Registry("view")


@dataclass
class Selection:
    """One example's attention, cut to the positions to show."""

    weights: np.ndarray  # (layer, head, query, key) float32
    queries: list[str]
    keys: list[str]
    layers: list[int]  # model layer number of each entry of weights' first axis
    heads: list[int]  # model head number of each entry of weights' second axis
    title: str  # e.g. the model name
    warning: str | None = None  # e.g. no CJK font
    scale: str = "auto"  # the head view's colour scale: auto, linear, log or rank (render/scale.py)
    clip: float | None = None  # a percentile of the weights as the head view's scale top


def select(maps: AttentionMaps, *, example: int = 0, stack: str = "encoder", hide_special: bool = False) -> Selection:
    """The real (unpadded) positions of one example, without special tokens if asked."""
    if not 0 <= example < len(maps.tokens):
        raise BadInput(f"example {example} is out of range; valid: 0-{len(maps.tokens) - 1}")
    if maps.kind != "encoder-decoder" and stack != "cross":
        stack = "encoder"  # a single-stack model: its one self-attention stack
    weights = maps.stack(stack)[:, example].float()  # (L, H, Q, K)
    enc = _keep(maps.tokens[example], maps.mask[example], maps.special, hide_special)
    dec = enc
    if stack in ("decoder", "cross"):
        dec = _keep(maps.decoder_tokens[example], maps.decoder_mask[example], maps.special, hide_special)
    q_idx, k_idx = (dec, enc) if stack == "cross" else (dec, dec) if stack == "decoder" else (enc, enc)
    if not q_idx or not k_idx:
        raise BadInput("nothing left to show: every token is special or padding")
    weights = weights[:, :, q_idx][:, :, :, k_idx]  # (L, H, q, k)
    q_tok = (maps.decoder_tokens[example] if stack != "encoder" else maps.tokens[example])
    queries = [q_tok[i] for i in q_idx]
    keys = [(maps.tokens[example] if stack != "decoder" else q_tok)[i] for i in k_idx]
    _, warning = families_for(queries + keys)
    title = f"{maps.model or 'model'} · {stack}" if maps.kind == "encoder-decoder" else (maps.model or "model")
    return Selection(weights.numpy(), queries, keys, list(maps.layers), list(maps.heads), title, warning)


def _keep(tokens: list[str], mask: torch.Tensor, special: list[str], hide_special: bool) -> list[int]:
    keep = [i for i, m in enumerate(mask.tolist()) if m > 0]
    if hide_special:
        drop = set(special) | {"[PAD]", "<pad>", "[CLS]", "[SEP]", "<s>", "</s>", "[BOS]", "[EOS]"}
        keep = [i for i in keep if tokens[i] not in drop]
    return keep


def render_view(maps: AttentionMaps, view: str = "head", *, layer: int = -1, head: int = 0, example: int = 0,
                stack: str = "encoder", hide_special: bool = False) -> tuple[Figure, str | None]:
    """Draw one view as a Figure; returns it and a warning line (or None)."""
    sel = select(maps, example=example, stack=stack, hide_special=hide_special)
    li, hi = maps.layer_index(layer), (maps.head_index(head) if view == "head" else 0)
    return VIEWS.get(view)(sel, li, hi), sel.warning


def view_bytes(sel: Selection, view: str, li: int, hi: int, fmt: str = "png", dpi: int = DPI) -> bytes:
    """One view of a selection as PNG, SVG or PDF bytes; li, hi index sel.weights' first two axes.

    The head view's PNG is blitted (render/headview.py); everything else is a Figure saved.
    """
    if view == "head" and fmt == "png":
        return head_png(_head(sel, li, hi), dpi)
    return figure_bytes(VIEWS.get(view)(sel, li, hi), fmt, dpi=dpi)


def _head(sel: Selection, li: int, hi: int) -> HeadView:
    title = f"{sel.title} · layer {sel.layers[li]} · head {sel.heads[hi]}"
    return HeadView(sel.weights[li, hi], sel.queries, sel.keys, title, scale=sel.scale, clip=sel.clip)


def _fontsize(n: int) -> float:
    return max(5.0, min(10.0, 220.0 / max(n, 1)))


def _ticks(ax, tokens: list[str], axis: str) -> None:
    """Thinned, cut labels: tick-label text dominates drawing cost on long inputs."""
    pos = list(range(0, len(tokens), label_step(len(tokens))))
    labels = [cut_label(tokens[i]) for i in pos]
    families, _ = families_for(tokens)
    kw = {"fontsize": _fontsize(len(pos)), "fontfamily": families}
    if axis == "x":
        ax.set_xticks(pos, labels, **kw)
        for label in ax.get_xticklabels():  # single characters (CJK, character tokenizers) read upright
            label.set_rotation(0 if len(label.get_text()) <= 2 else 90)
    else:
        ax.set_yticks(pos, labels, **kw)


def _side(n: int, per_token: float, base: float, low: float) -> float:
    return max(low, min(MAX_INCHES, base + per_token * n))


@VIEWS.register("head")
def head_view(sel: Selection, li: int, hi: int) -> Figure:
    """One layer and head: queries down, keys across, with a colorbar (PNGs take the blitted path)."""
    return head_figure(_head(sel, li, hi))


def _grid(sel: Selection, mats: list, names: list[str], title: str, labels: bool) -> Figure:
    cols = math.ceil(math.sqrt(len(mats)))
    rows = math.ceil(len(mats) / cols)
    cell = _side(len(sel.keys), 0.05, 1.4, 1.8)
    fig = Figure(figsize=(min(cols * cell, 24), min(rows * cell + 0.5, 24)), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    vmax = max(float(m.max()) for m in mats) or 1.0
    for i, ax in enumerate(axes.flat):
        if i >= len(mats):
            ax.axis("off")
            continue
        ax.imshow(mats[i], cmap=CMAP, vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest")
        ax.set_title(names[i], fontsize=8)
        show = labels and len(sel.keys) <= 24
        if show and i % cols == 0:
            _ticks(ax, sel.queries, "y")
        else:
            ax.set_yticks([])
        if show and i // cols == rows - 1:
            _ticks(ax, sel.keys, "x")
        else:
            ax.set_xticks([])
    fig.suptitle(title, fontsize=10)
    return fig


@VIEWS.register("layer")
def layer_view(sel: Selection, li: int, hi: int) -> Figure:
    """Every head of one layer in a grid, on one colour scale."""
    mats = [sel.weights[li, h] for h in range(sel.weights.shape[1])]
    return _grid(sel, mats, [f"head {h}" for h in sel.heads], f"{sel.title} · layer {sel.layers[li]}", True)


@VIEWS.register("mean")
def mean_view(sel: Selection, li: int, hi: int) -> Figure:
    """Head-averaged attention of every layer."""
    mats = list(sel.weights.mean(axis=1))  # L x (Q, K)
    return _grid(sel, mats, [f"layer {l}" for l in sel.layers], f"{sel.title} · mean over heads", True)


@VIEWS.register("model")
def model_view(sel: Selection, li: int, hi: int) -> Figure:
    """Layers x heads thumbnails, the overview of BertViz's model view as one static picture."""
    n_l, n_h = sel.weights.shape[:2]
    cell = 1.1 if n_l * n_h <= 72 else 0.8
    fig = Figure(figsize=(min(n_h * cell + 0.6, 24), min(n_l * cell + 0.6, 24)), layout="constrained")
    axes = fig.subplots(n_l, n_h, squeeze=False)
    for (l, h), ax in zip(((l, h) for l in range(n_l) for h in range(n_h)), axes.flat):
        ax.imshow(sel.weights[l, h], cmap=CMAP, vmin=0.0, aspect="auto", interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if l == 0:
            ax.set_title(f"H{sel.heads[h]}", fontsize=7)
        if h == 0:
            ax.set_ylabel(f"L{sel.layers[l]}", fontsize=7)
    fig.suptitle(f"{sel.title} · all layers x heads", fontsize=10)
    return fig
