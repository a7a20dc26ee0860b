"""The vision toys' image processor: PIL images or uint8 arrays -> normalised pixel_values."""

from __future__ import annotations

import numpy as np
import torch

from attnviz.errors import BadInput


def to_pixels(arrays: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1], as the toys were trained."""
    x = torch.from_numpy(np.ascontiguousarray(arrays)).float().div(255.0)  # (B, H, W, 3)
    return x.permute(0, 3, 1, 2).sub(0.5).div(0.5)  # (B, 3, H, W)


class ToyImageProcessor:
    """Callable like a Hugging Face image processor: ``processor(images=[...], return_tensors="pt")``."""

    def __init__(self, image_size: int):
        self.image_size = image_size  # side the images are resized to (bilinear), as the toy expects
        self.size = {"height": image_size, "width": image_size}

    def __call__(self, images=None, return_tensors: str = "pt", **_) -> dict:
        from PIL import Image

        if images is None:
            raise BadInput("no images given")
        images = images if isinstance(images, (list, tuple)) else [images]
        if not images:
            raise BadInput("no images given")
        side = self.image_size
        arrays = []
        for im in images:
            if isinstance(im, np.ndarray):
                im = Image.fromarray(im.astype(np.uint8))
            if not hasattr(im, "convert"):
                raise BadInput(f"not an image: {type(im).__name__}")
            im = im.convert("RGB")
            if im.size != (side, side):
                im = im.resize((side, side), Image.BILINEAR)
            arrays.append(np.asarray(im, dtype=np.uint8))
        if return_tensors not in ("pt", None):
            raise BadInput(f"return_tensors must be 'pt', not {return_tensors!r}")
        return {"pixel_values": to_pixels(np.stack(arrays))}  # (B, 3, side, side)
