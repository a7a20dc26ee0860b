"""What differs between vision Transformers (ViT, DeiT, CLIP, the toy ViT), for the CAM methods: which
module holds the image tower, its blocks, how many prefix tokens (CLS, DeiT's distillation token)
precede the patches, and the patch grid those tokens are laid on.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, NamedTuple

import torch

from attnviz.attention.sites import attention_sites, layer_path
from attnviz.errors import BadInput

# Windowed or hierarchical attention: no single token sequence whose CLS row covers the image.
UNSUPPORTED = ("swin", "swinv2", "donut-swin", "maskformer-swin", "nat", "dinat", "focalnet")


class Layout(NamedTuple):
    """How a vision Transformer's tokens lie on the image: ``prefix`` tokens, then a (gh, gw) patch grid."""

    prefix: int  # tokens before the patches (1, or 2 for DeiT)
    grid: tuple[int, int]  # (gh, gw) patches


def on_grid(scores: torch.Tensor, layout: Layout) -> torch.Tensor:
    """Token scores (..., S) -> the patches' scores on the grid (..., gh, gw)."""
    return scores[..., layout.prefix:].reshape(*scores.shape[:-1], *layout.grid)


def check_explainable(loaded) -> None:
    """A vision Transformer with one token sequence and live attention, or BadInput saying why not."""
    if loaded.kind != "vision":
        raise BadInput(f"{loaded.name} is {'an' if loaded.kind[0] in 'aeiou' else 'a'} {loaded.kind} model; "
                       "attnviz cam needs a vision Transformer")
    model_type = getattr(getattr(loaded.model, "config", None), "model_type", "")
    if model_type in UNSUPPORTED:
        raise BadInput(f"{loaded.architecture or model_type} uses windowed attention, which attnviz cam cannot "
                       "explain yet; use a ViT, DeiT or CLIP model")
    if loaded.backend != "attnviz":
        raise BadInput(f"{loaded.architecture or loaded.name} does not run on the attnviz kernel; cam needs live attention")


def is_full_clip(loaded) -> bool:
    """A CLIP model with both towers (it explains image-text similarity to prompts)."""
    return loaded.task == "clip" and hasattr(loaded.model, "vision_model") and hasattr(loaded.model, "text_model")


def tower(loaded) -> torch.nn.Module:
    """The module whose self-attention sees the image patches."""
    return loaded.model.vision_model if is_full_clip(loaded) else loaded.model


def patch_size(loaded) -> int:
    """The side of one square patch, in pixels of the processed image."""
    cfg = getattr(tower(loaded), "config", None)
    size = getattr(cfg, "patch_size", None)
    if not size:
        raise BadInput(f"{loaded.name} has no patch_size in its config; cannot map tokens to the image")
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The Transformer blocks in layer order: the parent path of each self-attention module."""
    paths = dict.fromkeys(layer_path(s.name) for s in attention_sites(module) if s.stack == "encoder")
    return [module.get_submodule(p) for p in paths if p]


@contextmanager
def block_input(module: torch.nn.Module, layer: int | None) -> Iterator[dict]:
    """Keep the hidden states entering block ``layer`` (live, in the graph); the hook is always removed."""
    seen: dict = {}
    if layer is None:
        yield seen
        return

    def hook(mod, args, kwargs):
        seen["features"] = args[0] if args else kwargs["hidden_states"]  # (B, S, D)

    handle = blocks(module)[layer].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


def check_layer(layer: int, n_layers: int) -> int:
    """``layer`` (negative counts from the end) as an index 0..n_layers-1, or BadInput."""
    if not -n_layers <= layer < n_layers:
        raise BadInput(f"layer {layer} is out of range; valid layers: 0-{n_layers - 1} (or -{n_layers}..-1)")
    return layer % n_layers


def layout(loaded, seq: int, pixel_values: torch.Tensor) -> Layout:
    """Prefix tokens and patch grid from the pixel size, the patch size and the sequence length."""
    p = patch_size(loaded)
    gh, gw = pixel_values.shape[-2] // p, pixel_values.shape[-1] // p
    prefix = seq - gh * gw
    if not 0 < prefix <= 4:
        raise BadInput(f"{loaded.name}: {seq} tokens do not match a {gh}x{gw} patch grid plus CLS; "
                       "this architecture cannot be explained yet")
    return Layout(prefix, (gh, gw))
