"""Images in: files, folders and globs; every mode to RGB; EXIF orientation; a size guard.

Also the geometry between a model's patch grid and the original image's pixels: which box of the
original the model saw (after its processor's resize and centre crop), and a map upsampled onto it.
"""

from __future__ import annotations

import glob
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from attnviz.errors import BadInput

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
WHITE = (255, 255, 255)


_ORIENTATION = 0x0112  # the EXIF tag that says how to turn the image upright


def default_max_pixels() -> int:
    """Pillow's decompression-bomb threshold (about 89 megapixels unless changed)."""
    return int(Image.MAX_IMAGE_PIXELS or 89_478_485)


def is_mask(path: Path) -> bool:
    """``<stem>.mask.png``: the ground-truth mask beside an image in a labelled folder, not an input."""
    return path.stem.lower().endswith(".mask")


def find_images(specs: list[str | os.PathLike]) -> list[Path]:
    """Files, folders (their image files, sorted, not recursive) and globs -> image paths in order.

    Folders and globs skip masks (see ``is_mask``); a mask named on its own is read like any image.
    """
    found: list[Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            inner = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES and not is_mask(p))
            if not inner:
                raise BadInput(f"no images ({', '.join(SUFFIXES)}) in folder {spec}")
            found.extend(inner)
        elif path.is_file():
            found.append(path)
        elif glob.has_magic(str(spec)):
            matched = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file() and not is_mask(Path(p)))
            if not matched:
                raise BadInput(f"no files match {spec}")
            found.extend(matched)
        else:
            raise BadInput(f"no such image file or folder: {spec}")
    if not found:
        raise BadInput("no images given")
    return found


@contextmanager
def _pixel_limit(max_pixels: int) -> Iterator[None]:
    """Let Pillow open what our own limit allows; its global limit is restored on exit."""
    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max(max_pixels, before or 0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def load_image(source, *, max_pixels: int | None = None) -> Image.Image:
    """A path, a binary file or a PIL image -> a fully loaded RGB image, upright as EXIF says.

    The pixel count is checked from the header, before any pixel is decoded.
    """
    limit = default_max_pixels() if max_pixels is None else int(max_pixels)
    if isinstance(source, Image.Image):
        if source.mode == "RGB" and source.getexif().get(_ORIENTATION, 1) == 1:
            return source  # already upright RGB (e.g. loaded once by the command line): no copies
        return to_rgb(ImageOps.exif_transpose(source) or source)
    name = str(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "image")
    try:
        with _pixel_limit(limit):
            with Image.open(source) as im:
                w, h = im.size
                if w * h > limit:
                    raise BadInput(f"{name}: {w}x{h} = {w * h:,} pixels is over the limit of {limit:,} (--max-pixels)")
                im.seek(0)  # the first frame of an animation
                im.load()
                upright = ImageOps.exif_transpose(im) or im
                return to_rgb(upright)
    except BadInput:
        raise
    except FileNotFoundError:
        raise BadInput(f"no such image file: {name}") from None
    except Image.DecompressionBombError:
        raise BadInput(f"{name}: image is over the pixel limit of {limit:,} (--max-pixels)") from None
    except UnidentifiedImageError:
        raise BadInput(f"{name}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise BadInput(f"{name}: cannot read image ({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None


# Memory one pixel costs from decoding to the drawn panel: the decoded frame, its RGB copy, the map upsampled
# to full size, its colours and the figure (measured: about 74 bytes per pixel for a 3000x3000 PNG through cam).
BYTES_PER_PIXEL = 80


def check_memory(paths: list[Path], max_bytes: int) -> None:
    """Refuse images whose decoding and drawing would need more than ``max_bytes`` together, from their headers
    alone (Pillow reads the size without decoding a pixel); an unreadable header is left to ``load_image``."""
    need, sizes = 0, []
    for path in paths:
        try:
            with _pixel_limit(2**62), Image.open(path) as im:
                w, h = im.size
        except Exception:  # load_image names what is wrong with the file
            continue
        need += w * h * BYTES_PER_PIXEL
        sizes.append((path, w, h))
    if need > max_bytes:
        path, w, h = max(sizes, key=lambda s: s[1] * s[2])
        what = f"{Path(path).name} ({w}x{h})" if len(sizes) == 1 else f"these {len(sizes)} images (the largest {w}x{h})"
        raise BadInput(f"{what} needs about {_gib(need)} to decode and draw but may use {_gib(max_bytes)}; "
                       "give smaller images or fewer at a time")


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB: transparency composited on white, 16-bit and float rescaled."""
    if im.mode == "RGB":
        return im.copy()
    if im.mode in _SIXTEEN_BIT or im.mode in ("I", "F"):
        return _rescaled(im)
    if im.mode == "P" and "transparency" in im.info or im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")  # P, L, 1, CMYK, YCbCr, LAB, HSV


def _rescaled(im: Image.Image) -> Image.Image:
    """16-bit and 32-bit grayscale onto 0..255 by their range, never clipped at 255."""
    values = np.asarray(im, dtype=np.float64)
    if im.mode in _SIXTEEN_BIT or (im.mode == "I" and values.min() >= 0 and values.max() <= 65535):
        scaled = values / 65535.0
    elif im.mode == "F" and values.min() >= 0 and values.max() <= 1:
        scaled = values
    else:
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    gray = np.clip(np.round(scaled * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, "L").convert("RGB")


def _get(obj, key):
    if obj is None:
        return None
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def view_box(processor, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the original image (width, height) that the processor keeps.

    A plain resize keeps everything; a shortest-edge resize or a fixed resize followed by a centre
    crop (DeiT, CLIP) keeps a central box.
    """
    w, h = size
    if not _get(processor, "do_center_crop"):
        return (0.0, 0.0, float(w), float(h))
    crop, resize = _get(processor, "crop_size"), _get(processor, "size")
    ch, cw = _get(crop, "height"), _get(crop, "width")
    if not ch or not cw:
        return (0.0, 0.0, float(w), float(h))
    if _get(resize, "shortest_edge"):
        scale_x = scale_y = _get(resize, "shortest_edge") / min(w, h)
    elif _get(resize, "height") and _get(resize, "width"):
        scale_x, scale_y = _get(resize, "width") / w, _get(resize, "height") / h
    else:
        scale_x = scale_y = 1.0
    bw, bh = min(cw / scale_x, w), min(ch / scale_y, h)
    left, top = (w - bw) / 2, (h - bh) / 2
    return (left, top, left + bw, top + bh)


def upsample(grid_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(gh, gw) -> (height, width) for size (width, height), smooth (bicubic) and kept in [0, 1]."""
    small = Image.fromarray(np.asarray(grid_map, dtype=np.float32), mode="F")
    big = small.resize((max(1, size[0]), max(1, size[1])), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(big, dtype=np.float32), 0.0, 1.0)


def to_pixels(grid_map: np.ndarray, size: tuple[int, int], box=None) -> np.ndarray:
    """A patch-grid map onto the original image (width, height): inside ``box`` upsampled, 0 outside."""
    w, h = size
    left, top, right, bottom = box or (0, 0, w, h)
    l, t, r, b = int(round(left)), int(round(top)), int(round(right)), int(round(bottom))
    out = np.zeros((h, w), dtype=np.float32)
    out[t:b, l:r] = upsample(grid_map, (r - l, b - t))
    return out


def patch_fraction(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(H, W) bool mask -> (gh, gw): the fraction of each patch it covers (H, W divisible by the grid)."""
    gh, gw = grid
    h, w = mask.shape
    if h % gh or w % gw:
        raise BadInput(f"a {w}x{h} mask does not divide into a {gw}x{gh} patch grid")
    cells = np.asarray(mask, dtype=np.float32).reshape(gh, h // gh, gw, w // gw)  # (gh, ph, gw, pw)
    return cells.mean(axis=(1, 3))
