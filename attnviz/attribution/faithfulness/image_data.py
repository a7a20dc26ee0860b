"""Labelled images for the image faithfulness measures: a trained toy's held-out scenes with their
ground-truth masks, or a folder ROOT/<class>/<image> with optional <stem>.mask.png masks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from attnviz.errors import BadInput
from attnviz.images import SUFFIXES, is_mask, load_image


@dataclass
class LabelledImage:
    """One image with its class and, where known, the (H, W) mask of the object that decides it."""

    image: Image.Image  # RGB
    label: int  # class index in the model's labels
    mask: np.ndarray | None = None  # (H, W) bool ground-truth region in the image's pixels, if known
    name: str = ""


def toy_examples(name: str, n: int, seed: int = 0) -> list[LabelledImage]:
    """Held-out examples of a trained toy's task, with its ground-truth masks."""
    from attnviz.models.toys.data import GENERATORS, generate, heldout_seed

    if name not in GENERATORS:
        raise BadInput(f"{name} has no built-in data; give --images FOLDER (one subfolder per class)")
    return [LabelledImage(Image.fromarray(ex["image"]), int(ex["label"]), np.asarray(ex["mask"], bool), f"{name}-{i}")
            for i, ex in enumerate(generate(name, n, heldout_seed(seed)))]


def folder_examples(root: str | Path, labels: list[str]) -> list[LabelledImage]:
    """ROOT/<class>/<image>; an optional ROOT/<class>/<stem>.mask.png marks the object (non-zero inside)."""
    root = Path(root)
    if not root.is_dir():
        raise BadInput(f"no such folder: {root}")
    out = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if sub.name not in labels and not (sub.name.isdigit() and int(sub.name) < len(labels)):
            raise BadInput(f"folder {sub.name!r} is not a class of the model; classes: {', '.join(labels[:20])}")
        label = labels.index(sub.name) if sub.name in labels else int(sub.name)
        for path in sorted(sub.iterdir()):
            if path.suffix.lower() not in SUFFIXES or is_mask(path):
                continue
            image, mask_path = load_image(path), path.with_name(path.stem + ".mask.png")
            mask = np.asarray(load_image(mask_path).convert("L")) > 0 if mask_path.is_file() else None
            if mask is not None and mask.shape != (image.height, image.width):
                raise BadInput(f"{mask_path} is {mask.shape[1]}x{mask.shape[0]}; its image is {image.width}x{image.height}")
            out.append(LabelledImage(image, label, mask, str(path.relative_to(root))))
    if not out:
        raise BadInput(f"no labelled images under {root} (expected {root}/<class>/<image>)")
    return out
