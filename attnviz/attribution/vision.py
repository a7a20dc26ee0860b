"""One recorded forward (and backward) pass of a vision Transformer, for the CAM methods.

What differs between ViT, DeiT, CLIP and the toy ViT is kept here: which module holds the image
tower, how many prefix tokens (CLS, DeiT's distillation token) precede the patches, and what scalar
is explained (a class logit, an embedding feature, or CLIP's image-text similarity to a prompt).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import torch

from attnviz.attention.sites import attention_sites, layer_path
from attnviz.recording import recording
from attnviz.errors import BadInput

# Windowed or hierarchical attention: no single token sequence whose CLS row covers the image.
UNSUPPORTED = ("swin", "swinv2", "donut-swin", "maskformer-swin", "nat", "dinat", "focalnet")


@dataclass
class Target:
    """What is explained for each example of a batch."""

    index: list[int]  # class / prompt / embedding-feature index per example (-1: the embedding norm)
    names: list[str]  # readable target per example
    labels: list[str]  # class names (or prompts); empty for an embedding model
    probs: torch.Tensor | None  # (B, C) over classes (sigmoids if multi-label) or prompts; None for an embedding model


@dataclass
class VisionPass:
    """Live tensors of one pass: attention (L, B, H, S, S), gradients, the block-input features."""

    weights: torch.Tensor | None  # (L, B, H, S, S); None when the method needs no attention
    grads: torch.Tensor | None  # (L, B, H, S, S) d score / d weights, or None
    prefix: int  # tokens before the patches (1, or 2 for DeiT)
    grid: tuple[int, int]  # (gh, gw) patches
    target: Target
    features: torch.Tensor | None = None  # (B, S, D) input of the chosen block
    feature_grads: torch.Tensor | None = None  # (B, S, D)
    notes: list[str] = field(default_factory=list)


def check_explainable(loaded) -> None:
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
    return loaded.task == "clip" and hasattr(loaded.model, "vision_model") and hasattr(loaded.model, "text_model")


def tower(loaded) -> torch.nn.Module:
    """The module whose self-attention sees the image patches."""
    return loaded.model.vision_model if is_full_clip(loaded) else loaded.model


def patch_size(loaded) -> int:
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
    if not -n_layers <= layer < n_layers:
        raise BadInput(f"layer {layer} is out of range; valid layers: 0-{n_layers - 1} (or -{n_layers}..-1)")
    return layer % n_layers


def resolve_targets(spec: str | int | None, labels: list[str], predicted: list[int]) -> list[int]:
    """--target CLASS|INDEX (None: each example's prediction) -> one index per example."""
    if spec is None or spec == "":
        return list(predicted)
    if isinstance(spec, (list, tuple)):  # one per example, e.g. ground-truth labels
        return [resolve_targets(one, labels, [p])[0] for one, p in zip(spec, predicted)]
    text = str(spec).strip()
    if text in labels:
        return [labels.index(text)] * len(predicted)
    if text.lstrip("-").isdigit():
        index = int(text)
        if labels and not 0 <= index < len(labels):
            raise BadInput(f"target {index} is out of range; valid: 0-{len(labels) - 1}")
        return [index] * len(predicted)
    if not labels:
        raise BadInput(f"unknown target {text!r}; this model has no class names, so give an index")
    shown = ", ".join(labels[:20]) + (", ..." if len(labels) > 20 else "")
    raise BadInput(f"unknown target {text!r}; give a class index or one of: {shown}")


def _score(loaded, out, target_spec, prompts: list[str]) -> tuple[torch.Tensor, Target]:
    """The scalar per example that gradients explain, and the target it belongs to."""
    if prompts:
        logits = out.logits_per_image  # (B, P) image-text similarity times CLIP's temperature
        labels = list(prompts)
    else:
        logits = getattr(out, "logits", None)
        labels = list(loaded.labels) or ([str(i) for i in range(logits.shape[-1])] if logits is not None else [])
    if logits is None:
        pooled = getattr(out, "pooler_output", None)
        pooled = pooled if pooled is not None else out.last_hidden_state[:, 0]  # (B, D)
        if target_spec is None:
            return pooled.norm(dim=-1), Target([-1] * pooled.shape[0], ["embedding norm"] * pooled.shape[0], [], None)
        index = resolve_targets(target_spec, [], [0] * pooled.shape[0])
        if not 0 <= index[0] < pooled.shape[-1]:
            raise BadInput(f"target {index[0]} is out of range; this embedding has {pooled.shape[-1]} features")
        return pooled[:, index[0]], Target(index, [f"feature {index[0]}"] * pooled.shape[0], [], None)
    probs = logits.detach().float().softmax(-1) if prompts else loaded.class_probs(logits.detach())
    index = resolve_targets(target_spec, labels, probs.argmax(-1).tolist())
    score = logits[torch.arange(logits.shape[0], device=logits.device), torch.tensor(index, device=logits.device)]
    return score, Target(index, [labels[i] for i in index], labels, probs.cpu())


def run_pass(loaded, pixel_values: torch.Tensor, *, target=None, prompts: list[str] | None = None,
             want_grads: bool = False, feature_layer: int | None = None, prompt_batch: dict | None = None,
             attention: bool = True) -> VisionPass:
    """Forward with live attention; backward to the attention (and block input) when asked.

    ``attention=False`` records nothing, so every layer keeps the fused SDPA path (Grad-CAM needs
    only the block input).
    """
    model, vision = loaded.model, tower(loaded)
    pixels = pixel_values.detach().requires_grad_(want_grads)
    kwargs = {"pixel_values": pixels, **(prompt_batch or {})}
    with torch.set_grad_enabled(want_grads), recording(vision, keep_graph=True, layers=None if attention else []) as rec, \
            block_input(vision, feature_layer) as seen:
        out = model(**kwargs)
        score, tgt = _score(loaded, out, target, prompts or [])
        layers = rec.layers("encoder")
        live = [rec.calls[("encoder", l)][0] for l in layers]
        expected = loaded.num_layers if attention else 0
        if len(layers) != expected or any(len(rec.calls[("encoder", l)]) != 1 for l in layers):
            raise BadInput(f"{loaded.name}: attention was not one full-image call per layer; cannot explain it")
        grads, fgrads, feats = None, None, seen.get("features")
        if want_grads:
            wanted = live + ([feats] if feats is not None else [])
            found = torch.autograd.grad(score.sum(), wanted, allow_unused=True)
            if live:
                grads = torch.stack([g if g is not None else torch.zeros_like(w) for g, w in zip(found, live)])
            fgrads = found[-1] if feats is not None else None
    weights = torch.stack([w.detach() for w in live]) if live else None  # (L, B, H, S, S)
    seq = weights.shape[-1] if weights is not None else feats.shape[1]
    return VisionPass(weights, grads, *_layout(loaded, seq, pixel_values), tgt,
                      feats.detach() if feats is not None else None, fgrads)


def _layout(loaded, seq: int, pixel_values: torch.Tensor) -> tuple[int, tuple[int, int]]:
    """Prefix tokens and patch grid from the pixel size, the patch size and the sequence length."""
    p = patch_size(loaded)
    gh, gw = pixel_values.shape[-2] // p, pixel_values.shape[-1] // p
    prefix = seq - gh * gw
    if not 0 < prefix <= 4:
        raise BadInput(f"{loaded.name}: {seq} tokens do not match a {gh}x{gw} patch grid plus CLS; "
                       "this architecture cannot be explained yet")
    return prefix, (gh, gw)
