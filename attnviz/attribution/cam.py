"""Class-activation maps for vision Transformers: where on the image a decision comes from.

Every method maps a VisionPass to relevance over the patch grid (B, gh, gw); ``cam()`` batches the
images, runs the pass each method needs and scales every map to [0, 1]. The attention-composition
methods (rollout, gradient rollout, Chefer et al.) come from ``attribution.attention`` and read the
CLS row over the patch tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from attnviz.attribution import attention as rel
from attnviz.attribution.vision import VisionPass, check_explainable, check_layer, is_full_clip, run_pass
from attnviz.errors import BadInput
from attnviz.registry import Registry


@dataclass(frozen=True)
class CamMethod:
    fn: Callable  # fn(VisionPass, layer: int, **options) -> (B, gh, gw) [, (B, H, gh, gw) per head]
    grads: bool  # needs d score / d attention
    features: bool = False  # needs the hidden states entering block ``layer`` and their gradient
    layer: bool = False  # takes --layer
    summary: str = ""  # one line for --help and the README
    attention: bool = True  # reads attention weights (False: the kernel's fused path stays on)


# Vision-only methods: maps over a patch grid, which the token-score METHODS registry does not describe.
CAM_METHODS: Registry[CamMethod] = Registry("cam method")


@dataclass
class CamResult:
    method: str
    maps: torch.Tensor  # (B, gh, gw) float32 in [0, 1], one per image
    target: list[str]  # what was explained, per image
    target_index: list[int]  # its class (or prompt) index; -1 for an embedding norm
    top: list[list[tuple[str, float]]]  # top-k (label, probability) per image; empty without classes
    prefix: int  # tokens before the patches
    heads: torch.Tensor | None = None  # (B, H, gh, gw) per-head maps (method "heads")
    boxes: list[tuple] = field(default_factory=list)  # per image: (left, top, right, bottom) the model saw
    params: dict = field(default_factory=dict)  # options the method ran with
    notes: list[str] = field(default_factory=list)

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.maps.shape[-2:])


def _patches(p: VisionPass, rows: torch.Tensor) -> torch.Tensor:
    """CLS rows (B, S) -> patch grid (B, gh, gw)."""
    return rows[:, p.prefix:].reshape(rows.shape[0], *p.grid)  # (B, gh, gw)


def _register(name: str, grads: bool, summary: str, features: bool = False, layer: bool = False,
              attention: bool = True):
    def add(fn):
        CAM_METHODS.register(name)(CamMethod(fn, grads, features, layer, summary, attention))
        return fn
    return add


@_register("attn-grad", grads=True, summary="gradient-weighted attention relevance (Chefer et al. 2021, arXiv:2103.15679)")
def _attn_grad(p: VisionPass, layer: int, **_):
    return _patches(p, rel.chefer(p.weights, p.grads)[:, 0])


@_register("rollout", grads=False, summary="attention rollout (Abnar & Zuidema 2020, arXiv:2005.00928)")
def _rollout(p: VisionPass, layer: int, fusion: str = "mean", discard_ratio: float = 0.0, **_):
    return _patches(p, rel.rollout(p.weights, fusion=fusion, discard_ratio=discard_ratio)[:, 0])


@_register("grad-rollout", grads=True, summary="rollout of gradient-weighted attention, layer by layer")
def _grad_rollout(p: VisionPass, layer: int, **_):
    return _patches(p, rel.grad_rollout(p.weights, p.grads)[:, 0])


@_register("attn-gradcam", grads=True, layer=True, summary="Grad-CAM on one layer's CLS attention (heads weighted by mean gradient)")
def _attn_gradcam(p: VisionPass, layer: int, **_):
    # Chefer et al.'s "GradCAM" baseline: head weights are the mean gradient over the patches.
    cam = p.weights[layer][:, :, 0]  # (B, H, S)
    grad = p.grads[layer][:, :, 0, p.prefix:].mean(dim=-1, keepdim=True)  # (B, H, 1)
    return _patches(p, (cam * grad).mean(dim=1).clamp(min=0))


@_register("gradcam", grads=True, features=True, layer=True, attention=False, summary="Grad-CAM (arXiv:1610.02391) on the tokens entering a block, as a patch grid")
def _gradcam(p: VisionPass, layer: int, **_):
    feats, grads = p.features[:, p.prefix:], p.feature_grads[:, p.prefix:]  # (B, N, D)
    channel_weights = grads.mean(dim=1, keepdim=True)  # (B, 1, D): Grad-CAM's averaged gradients
    cam = (feats * channel_weights).sum(dim=-1).clamp(min=0)  # (B, N)
    return cam.reshape(cam.shape[0], *p.grid)  # (B, gh, gw)


@_register("raw", grads=False, layer=True, summary="one layer's CLS attention to the patches, mean over heads")
def _raw(p: VisionPass, layer: int, **_):
    return _patches(p, p.weights[layer][:, :, 0].mean(dim=1))


@_register("heads", grads=False, layer=True, summary="one layer's CLS attention per head (a grid of maps)")
def _heads(p: VisionPass, layer: int, **_):
    rows = p.weights[layer][:, :, 0, p.prefix:]  # (B, H, N)
    per_head = rows.reshape(*rows.shape[:2], *p.grid)  # (B, H, gh, gw)
    return per_head.mean(dim=1), per_head


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Each map (..., gh, gw) onto [0, 1] by its own range; a flat or non-finite map becomes 0."""
    maps = torch.nan_to_num(maps.float(), nan=0.0, posinf=0.0, neginf=0.0)
    flat = maps.flatten(-2)  # (..., N)
    low, high = flat.amin(-1, keepdim=True), flat.amax(-1, keepdim=True)
    span = (high - low).clamp(min=1e-12)
    scaled = torch.where(high > low, (flat - low) / span, torch.zeros_like(flat))
    return scaled.reshape(maps.shape).clamp(0.0, 1.0)


def cam(loaded, images, *, method: str = "attn-grad", target=None, layer: int = -1, prompts=None,
        fusion: str = "mean", discard_ratio: float = 0.0, batch_size: int = 16, top_k: int = 3,
        max_pixels: int | None = None) -> CamResult:
    """Maps over the patch grid for ``images`` (paths, files or PIL images), in batches."""
    spec = CAM_METHODS.get(method)
    check_explainable(loaded)
    prompts = [p for p in (prompts or []) if p.strip()]
    if is_full_clip(loaded) and not prompts:
        raise BadInput("a full CLIP model explains image-text similarity: give --prompt \"a photo of ...\"")
    if fusion not in rel.FUSIONS:
        raise BadInput(f"unknown head fusion {fusion!r}; choose {', '.join(rel.FUSIONS)}")
    if not 0.0 <= discard_ratio < 1.0:
        raise BadInput(f"--discard-ratio must be in [0, 1), not {discard_ratio}")
    if batch_size < 1:
        raise BadInput(f"--batch-size must be at least 1, not {batch_size}")
    layer = check_layer(layer, loaded.num_layers)
    # One path, file or image is a batch of one (a string is not a list of characters).
    images = list(images) if isinstance(images, (list, tuple)) else [images]
    if not images:
        raise BadInput("no images given")
    from attnviz.images import load_image, view_box

    pil = [load_image(im, max_pixels=max_pixels) for im in images]  # every file is checked before any work
    per_image = list(target) if isinstance(target, (list, tuple)) else None  # one target per image
    if per_image is not None and len(per_image) != len(pil):
        raise BadInput(f"{len(per_image)} targets given for {len(pil)} images")
    parts = [_batch(loaded, pil[i:i + batch_size], spec, method, per_image[i:i + batch_size] if per_image else target,
                    layer, prompts, {"fusion": fusion, "discard_ratio": discard_ratio})
             for i in range(0, len(pil), batch_size)]
    result = _merge(parts, method, top_k, {"layer": layer, "fusion": fusion, "discard_ratio": discard_ratio,
                                           "target": per_image or target, "prompts": prompts})
    result.boxes = [view_box(loaded.processor, im.size) for im in pil]
    return result


def _batch(loaded, pil, spec: CamMethod, method, target, layer, prompts, options) -> dict:
    enc = loaded.encode(pil)
    prompt_batch = _prompt_batch(loaded, prompts, len(pil)) if prompts else None
    p = run_pass(loaded, enc.batch["pixel_values"], target=target, prompts=prompts, want_grads=spec.grads,
                 feature_layer=layer if spec.features else None, prompt_batch=prompt_batch,
                 attention=spec.attention)
    out = spec.fn(p, layer, **options)
    maps, heads = out if isinstance(out, tuple) else (out, None)
    return {"maps": normalise(maps).cpu(), "heads": normalise(heads).cpu() if heads is not None else None,
            "target": p.target, "prefix": p.prefix}


def _prompt_batch(loaded, prompts: list[str], n_images: int) -> dict:
    if loaded.tokenizer is None:
        raise BadInput(f"{loaded.name} has no tokenizer for --prompt")
    batch = loaded.tokenizer(prompts, padding=True, return_tensors="pt")
    return {k: v.to(loaded.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}


def _merge(parts: list[dict], method: str, top_k: int, params: dict) -> CamResult:
    targets = [part["target"] for part in parts]
    top = []
    for t in targets:
        for b in range(len(t.index)):
            if t.probs is None:
                top.append([])
                continue
            values, idx = t.probs[b].topk(min(top_k, t.probs.shape[-1]))
            top.append([(t.labels[i], float(v)) for v, i in zip(values.tolist(), idx.tolist())])
    heads = [part["heads"] for part in parts]
    return CamResult(
        method=method, maps=torch.cat([part["maps"] for part in parts]),
        target=[n for t in targets for n in t.names], target_index=[i for t in targets for i in t.index],
        top=top, prefix=parts[0]["prefix"], heads=torch.cat(heads) if heads[0] is not None else None,
        params=params)
