"""toy-shapes: one to three shapes of different classes on a noisy background with small distractor strokes.

The task is multi-label: name every class present. An example: ``{"image" (uint8 array (H, W, 3)),
"labels" (sorted indices into CLASSES of the shapes present), "label_names", and for the first shape
placed, the one a benchmark explains: "label", "label_name", "mask" (bool array (H, W): its pixels),
"box" ([top, left, bottom, right], inclusive), "patch_mask" (float array (G, G): the fraction of each
patch it covers)}``. Shapes never touch; distractors are 1-pixel strokes of at most 4 pixels that keep
a pixel away from every shape, so they cannot look like any class.
"""

from __future__ import annotations

import numpy as np

from attnviz.models.toys.data import GENERATORS

CLASSES = ("circle", "square", "triangle", "cross")
SIZE = 32  # image side in pixels
PATCH = 4  # the toy's patch side: patch_mask is on this grid
RADIUS = (4, 6)  # half-size of a shape, inclusive
COUNT = (1, 3)  # shapes per image, inclusive


def _shape(kind: str, yy, xx, cy: int, cx: int, r: int) -> np.ndarray:
    dy, dx = yy - cy, xx - cx
    if kind == "circle":
        return dy**2 + dx**2 <= r * r + r // 2
    if kind == "square":
        return (np.abs(dy) <= r - 1) & (np.abs(dx) <= r - 1)
    if kind == "triangle":  # apex up; the base is 2r wide
        return (dy >= -r) & (dy <= r) & (np.abs(dx) * 2 <= (dy + r))
    arm = max(1, r // 3)  # cross: a plus sign
    return ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))


def _colour(rng, low: int) -> np.ndarray:
    return rng.integers(low, 256, size=3).astype(np.float32)


def _distractors(rng, image: np.ndarray, keep_out: np.ndarray) -> None:
    for _ in range(int(rng.integers(3, 7))):
        y, x = int(rng.integers(0, SIZE)), int(rng.integers(0, SIZE))
        dy, dx = [(0, 1), (1, 0), (1, 1), (1, -1)][int(rng.integers(0, 4))]
        colour = _colour(rng, 90)
        for k in range(int(rng.integers(2, 5))):
            py, px = y + k * dy, x + k * dx
            if 0 <= py < SIZE and 0 <= px < SIZE and not keep_out[py, px]:
                image[py, px] = colour


def _place(rng, r: int, taken: list[tuple[int, int, int]]) -> tuple[int, int] | None:
    """A centre for a shape of half-size r whose box keeps a pixel away from the boxes taken."""
    for _ in range(200):
        cy, cx = (int(v) for v in rng.integers(r + 1, SIZE - r - 1, size=2))
        if all(abs(cy - y) > r + q + 1 or abs(cx - x) > r + q + 1 for y, x, q in taken):
            return cy, cx
    return None


def _layout(rng) -> tuple[list[int], list[tuple[int, int, int]]]:
    """Classes and (cy, cx, r) of the shapes of one image; a crowded draw is drawn again."""
    k = int(rng.integers(COUNT[0], COUNT[1] + 1))
    while True:
        classes = [int(c) for c in rng.choice(len(CLASSES), size=k, replace=False)]
        taken = []
        for r in rng.integers(RADIUS[0], RADIUS[1] + 1, size=k):
            centre = _place(rng, int(r), taken)
            if centre is None:
                break
            taken.append((*centre, int(r)))
        if len(taken) == k:
            return classes, taken


def _one(rng: np.random.Generator) -> dict:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    classes, places = _layout(rng)
    masks = [_shape(CLASSES[c], yy, xx, cy, cx, r) for c, (cy, cx, r) in zip(classes, places)]
    background = rng.integers(0, 70, size=3).astype(np.float32)
    image = background + rng.normal(0, 18, size=(SIZE, SIZE, 3)).astype(np.float32)
    # Distractors keep one pixel away from the shapes so that they never change an outline.
    near = np.zeros((SIZE, SIZE), dtype=bool)
    for mask in masks:
        ys, xs = np.nonzero(mask)
        for oy, ox in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)):
            near[np.clip(ys + oy, 0, SIZE - 1), np.clip(xs + ox, 0, SIZE - 1)] = True
    _distractors(rng, image, near)
    for mask in masks:
        image[mask] = _colour(rng, 140)
    label, mask = classes[0], masks[0]
    ys, xs = np.nonzero(mask)
    grid = SIZE // PATCH
    patch = mask.reshape(grid, PATCH, grid, PATCH).mean(axis=(1, 3))  # (G, G)
    return {"image": np.clip(image, 0, 255).astype(np.uint8), "labels": sorted(classes),
            "label_names": [CLASSES[c] for c in sorted(classes)], "label": label, "label_name": CLASSES[label],
            "mask": mask, "box": [int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max())],
            "patch_mask": patch.astype(np.float32)}


@GENERATORS.register("toy-shapes")
def generate(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [_one(rng) for _ in range(n)]
