"""Class-activation maps for vision Transformers: where on the image a decision comes from.

``cam()`` batches the images, runs the one live pass (``passes.live_pass``) that the method needs, and
lays the method's token scores (``methods/cam.py``) on the patch grid, each map scaled to [0, 1].
"""

from __future__ import annotations

import torch

from attnviz.attribution.methods import CAM_METHODS, Method, RolloutOptions, options_for
from attnviz.attribution.passes import live_pass
from attnviz.attribution.results import CamResult
from attnviz.attribution.targets import Target, TargetSpec, build_target
from attnviz.attribution.vision import check_explainable, check_layer, is_full_clip, layout, on_grid, tower
from attnviz.errors import BadInput


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
    """Maps (B, gh, gw) over the patch grid for ``images`` (paths, files or PIL images), in batches.

    ``target``: a class name or index (or one per image; default: each image's prediction), a prompt
    with ``prompts`` for a full CLIP model, or a feature index of an image encoder (default: its norm).
    ``layer`` is read by raw, heads, attn-gradcam and gradcam; ``fusion`` and ``discard_ratio`` by rollout.
    """
    spec = CAM_METHODS.get(method)
    check_explainable(loaded)
    prompts = [p for p in (prompts or []) if p.strip()]
    if is_full_clip(loaded) and not prompts:
        raise BadInput("a full CLIP model explains image-text similarity: give --prompt \"a photo of ...\"")
    RolloutOptions(fusion, discard_ratio)  # checked whichever method runs: a bad value is a mistake anyway
    layer = check_layer(layer, loaded.num_layers)
    options = options_for(method, registry=CAM_METHODS, layer=layer, fusion=fusion, discard_ratio=discard_ratio)
    if batch_size < 1:
        raise BadInput(f"--batch-size must be at least 1, not {batch_size}")
    # One path, file or image is a batch of one (a string is not a list of characters).
    images = list(images) if isinstance(images, (list, tuple)) else [images]
    if not images:
        raise BadInput("no images given")
    from attnviz.images import load_image, view_box

    pil = [load_image(im, max_pixels=max_pixels) for im in images]  # every file is checked before any work
    per_image = list(target) if isinstance(target, (list, tuple)) else None  # one target per image
    if per_image is not None and len(per_image) != len(pil):
        raise BadInput(f"{len(per_image)} targets given for {len(pil)} images")
    parts = [_batch(loaded, pil[i:i + batch_size], spec, options, layer,
                    TargetSpec(tuple(per_image[i:i + batch_size]) if per_image else target, prompts=tuple(prompts)))
             for i in range(0, len(pil), batch_size)]
    result = _merge(parts, method, top_k, {"layer": layer, "fusion": fusion, "discard_ratio": discard_ratio,
                                           "target": per_image or target, "prompts": prompts})
    result.boxes = [view_box(loaded.processor, im.size) for im in pil]
    return result


def _batch(loaded, pil, spec: Method, options, layer: int, target: TargetSpec) -> dict:
    """One batch of images: the live pass the method needs, its token scores laid on the patch grid."""
    pixel_values = loaded.encode(pil).batch["pixel_values"]
    pixels = pixel_values.detach().requires_grad_(spec.grads)
    prompt_batch = _prompt_batch(loaded, list(target.prompts)) if target.prompts else {}
    p = live_pass(loaded, lambda _eager: loaded.model(pixel_values=pixels, **prompt_batch),
                  lambda out: build_target(loaded, {}, out, target), grads=spec.grads, module=tower(loaded),
                  attention=spec.attention, feature_layer=layer if spec.features else None,
                  expect_layers=loaded.num_layers if spec.attention else 0)
    seq = p.weights["encoder"].shape[-1] if p.weights else p.features.shape[1]
    where = layout(loaded, seq, pixel_values)
    out = spec.fn(p, options, where)
    scores, heads = out if isinstance(out, tuple) else (out, None)
    return {"maps": normalise(on_grid(scores, where)).cpu(),
            "heads": normalise(on_grid(heads, where)).cpu() if heads is not None else None,
            "target": p.target, "prefix": where.prefix}


def _prompt_batch(loaded, prompts: list[str]) -> dict:
    if loaded.tokenizer is None:
        raise BadInput(f"{loaded.name} has no tokenizer for --prompt")
    batch = loaded.tokenizer(prompts, padding=True, return_tensors="pt")
    return {k: v.to(loaded.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}


def _top(t: Target, top_k: int) -> list[list[tuple[str, float]]]:
    """Per example the ``top_k`` (label, probability) pairs, most probable first; empty without classes."""
    if t.probs is None:
        return [[] for _ in t.index]
    out = []
    for row in t.probs:
        values, idx = row.topk(min(top_k, t.probs.shape[-1]))
        out.append([(t.labels[i], float(v)) for v, i in zip(values.tolist(), idx.tolist())])
    return out


def _merge(parts: list[dict], method: str, top_k: int, params: dict) -> CamResult:
    targets = [part["target"] for part in parts]
    heads = [part["heads"] for part in parts]
    return CamResult(
        method=method, maps=torch.cat([part["maps"] for part in parts]),
        target=[n for t in targets for n in t.describe], target_index=[i for t in targets for i in t.index],
        top=[pair for t in targets for pair in _top(t, top_k)], prefix=parts[0]["prefix"],
        heads=torch.cat(heads) if heads[0] is not None else None, params=params)


__all__ = ["CAM_METHODS", "CamResult", "cam", "normalise"]
