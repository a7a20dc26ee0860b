"""How faithful is a CAM? Pointing game, mask IoU and perturbation AUC on images with ground truth.

Perturbation follows Chefer et al. 2021 (arXiv:2012.09838, section 4): remove 10% .. 90% of the
input pixels in order of relevance (most relevant first: "positive", lower AUC is better; least
relevant first: "negative", higher is better) and record the accuracy at each step (see
``recognised``). A removed pixel turns black, as in their evaluation, which zeroes the [0, 1] image
before normalising it; here black is whatever the model's own processor makes of a black image.

Two reference rows frame the methods: a uniformly random map, and, where every image has a mask, the
ground truth itself (each patch's share of the object), which ranks the object's pixels first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from attnviz.attribution.cam import CAM_METHODS, cam
from attnviz.attribution.faithfulness.engine import area, ranks, removal_values
from attnviz.attribution.faithfulness.image_data import LabelledImage, folder_examples, toy_examples  # noqa: F401
from attnviz.errors import BadInput
from attnviz.images import to_pixels

STEPS = tuple(round(0.1 * i, 1) for i in range(10))  # fraction of pixels removed: 0.0 (none) .. 0.9
RANDOM = "random"  # a reference row: a uniformly random map
TRUTH = "ground-truth"  # a reference row: the share of each patch that the object's mask covers


@dataclass
class FaithRow:
    """One method's faithfulness over n images; the curves hold the accuracy at each of STEPS."""

    method: str
    n: int  # images
    pointing: float | None  # fraction whose map maximum lies inside the mask
    iou: float | None  # mean IoU of the map thresholded at its mean with the mask
    auc_positive: float  # lower is better
    auc_negative: float  # higher is better
    curve_positive: list[float] = field(default_factory=list)  # accuracy at each of STEPS
    curve_negative: list[float] = field(default_factory=list)
    positive_each: list[float] = field(default_factory=list)  # per image: its positive AUC (0 to 1), for paired tests
    pointing_each: list[bool] = field(default_factory=list)  # per image with a mask: the pointing hit

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.endswith("_each")}


def check_classifier(loaded) -> None:
    """Faithfulness needs an image classifier with class labels; anything else is refused."""
    if loaded.task != "image-classification" or not loaded.labels:
        raise BadInput(f"{loaded.name} is not an image classifier; faithfulness needs class labels")


def pointing_and_iou(grid_map: np.ndarray, mask: np.ndarray, box) -> tuple[bool, float]:
    """Whether the map's maximum patch overlaps the mask, and the IoU of map >= its mean with the mask.

    The map's own resolution is the patch grid, so its maximum is a patch, not a pixel of the
    (smooth, display-only) upsampling.
    """
    h, w = mask.shape
    gh, gw = grid_map.shape
    left, top, right, bottom = box or (0, 0, w, h)
    r, c = np.unravel_index(int(np.argmax(grid_map)), grid_map.shape)
    y0, y1 = top + (bottom - top) * r / gh, top + (bottom - top) * (r + 1) / gh
    x0, x1 = left + (right - left) * c / gw, left + (right - left) * (c + 1) / gw
    hit = bool(mask[int(np.floor(y0)):int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))].any())
    pixels = to_pixels(grid_map, (w, h), box)  # (H, W)
    chosen = pixels >= pixels.mean()
    union = np.logical_or(chosen, mask).sum()
    return hit, float(np.logical_and(chosen, mask).sum() / union) if union else 0.0


def black(loaded) -> torch.Tensor:
    """A black pixel as the model's processor normalises it: (1, C, 1, 1)."""
    pixels = loaded.encode([Image.new("RGB", (64, 64))]).batch["pixel_values"]  # (1, C, H, W)
    return pixels.float().mean(dim=(2, 3), keepdim=True)


def mask_map(mask: np.ndarray, box, grid: tuple[int, int]) -> torch.Tensor:
    """(H, W) bool mask -> (gh, gw): the share of each patch of the processor's ``box`` it covers."""
    h, w = mask.shape
    left, top, right, bottom = (int(round(v)) for v in (box or (0, 0, w, h)))
    inside = torch.from_numpy(np.ascontiguousarray(mask[top:bottom, left:right], dtype=np.float32))
    return F.adaptive_avg_pool2d(inside[None, None], grid)[0, 0]  # (gh, gw)


def perturbation_hits(loaded, pixel_values: torch.Tensor, maps: torch.Tensor, labels: torch.Tensor,
                      seed: int = 0, fill: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Whether each image keeps its label (positive, negative order): two (B, len(STEPS)) bool arrays for
    one batch; maps (B, gh, gw). ``fill`` (1, C, 1, 1) replaces removed pixels; black (see ``black``)
    unless given.
    """
    b, _, h, w = pixel_values.shape
    relevance = F.interpolate(maps[:, None].float(), size=(h, w), mode="bilinear", align_corners=False)[:, 0]  # (B, H, W)
    gen = torch.Generator().manual_seed(seed)
    jitter = torch.rand(b, h * w, generator=gen) * 1e-6  # ties (flat regions) in random order, not raster order
    flat = relevance.reshape(b, h * w).cpu() + jitter  # (B, H*W)
    fill = (black(loaded) if fill is None else fill).to(pixel_values)  # (1, C, 1, 1)
    rows = torch.arange(b)

    def kept(rows: torch.Tensor, gone: torch.Tensor) -> torch.Tensor:
        keep = (~gone).reshape(b, 1, h, w).to(pixel_values)  # (B, 1, H, W)
        filled = pixel_values * keep + fill * (1 - keep)
        with torch.inference_mode():
            logits = loaded.model(pixel_values=filled).logits  # (B, C)
        return recognised(loaded, logits.cpu(), labels)

    hits = []
    for descending in (True, False):
        rank = ranks(flat, descending=descending)  # (B, H*W) position in removal order
        # One batch per step: every image loses the same fraction of its pixels.
        steps = [removal_values(rank, rows, torch.full((b,), round(frac * h * w)), kept).numpy() for frac in STEPS]
        hits.append(np.stack(steps, axis=1))  # (B, len(STEPS))
    return hits[0], hits[1]


def recognised(loaded, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the model still gives each image its label: the top class, or for a multi-label model a
    probability above one half (several classes can be present at once, so the top one need not be it)."""
    if loaded.multi_label:
        return logits[torch.arange(len(labels)), labels] > 0
    return logits.argmax(-1) == labels


def auc(curve: list[float] | np.ndarray) -> float:
    """Area under accuracy vs fraction removed, over STEPS, scaled to [0, 1]."""
    return area(curve, STEPS)


def evaluate(loaded, data: list[LabelledImage], methods: list[str] | None = None, *, batch_size: int = 32,
             seed: int = 0, baseline: bool = True) -> list[FaithRow]:
    """One row per method, then the reference rows (random map; ground truth where every image has a mask)."""
    check_classifier(loaded)
    if not data:
        raise BadInput("no images to evaluate")
    methods = list(methods or CAM_METHODS.names())
    for m in methods:
        CAM_METHODS.get(m)
    fill = black(loaded)
    references = []
    if baseline:
        references = [RANDOM, TRUTH] if all(d.mask is not None for d in data) else [RANDOM]
    return [_evaluate_one(loaded, data, m, batch_size, seed, fill) for m in methods + references]


def _evaluate_one(loaded, data: list[LabelledImage], method: str, batch_size: int, seed: int,
                  fill: torch.Tensor) -> FaithRow:
    hits, ious, each, pos, neg = [], [], [], np.zeros(len(STEPS)), np.zeros(len(STEPS))
    for start in range(0, len(data), batch_size):
        chunk = data[start:start + batch_size]
        images, labels = [d.image for d in chunk], [d.label for d in chunk]
        pixel_values = loaded.encode(images).batch["pixel_values"]
        maps, boxes = _maps(loaded, chunk, method, seed + start, batch_size)
        for d, grid_map, box in zip(chunk, maps.numpy(), boxes):
            if d.mask is not None:
                hit, iou = pointing_and_iou(grid_map, d.mask, box)
                hits.append(hit)
                ious.append(iou)
        p, n = perturbation_hits(loaded, pixel_values, maps, torch.tensor(labels), seed + start, fill)
        pos, neg = pos + p.sum(0), neg + n.sum(0)
        each.extend(auc(row) for row in p.astype(np.float64))
    pos, neg = pos / len(data), neg / len(data)
    return FaithRow(method, len(data), float(np.mean(hits)) if hits else None, float(np.mean(ious)) if ious else None,
                    auc(pos), auc(neg), pos.round(4).tolist(), neg.round(4).tolist(), each, hits)


def _maps(loaded, chunk: list[LabelledImage], method, seed, batch_size):
    from attnviz.images import view_box

    images = [d.image for d in chunk]
    if method in (RANDOM, TRUTH):
        grid = cam(loaded, images[:1], method="raw").grid  # only for the grid shape
        boxes = [view_box(loaded.processor, im.size) for im in images]
        if method == TRUTH:
            return torch.stack([mask_map(d.mask, box, grid) for d, box in zip(chunk, boxes)]), boxes
        return torch.rand(len(images), *grid, generator=torch.Generator().manual_seed(seed)), boxes
    result = cam(loaded, images, method=method, target=[d.label for d in chunk], batch_size=batch_size)
    return result.maps, result.boxes
