"""Image loading: every mode and format, EXIF orientation, the pixel limit, bad files; grid geometry."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from attnviz.errors import BadInput
from attnviz.images import find_images, load_image, patch_fraction, to_pixels, upsample, view_box


def _saved(im: Image.Image, path, **kw):
    im.save(path, **kw)
    return path


def test_rgba_is_composited_on_white(tmp_path):
    a = np.zeros((2, 2, 4), np.uint8)
    a[0, 0] = (255, 0, 0, 0)  # fully transparent red: white, not red
    a[0, 1] = (255, 0, 0, 128)  # half-transparent red: pink
    a[1, 0] = (0, 0, 255, 255)
    got = np.asarray(load_image(_saved(Image.fromarray(a, "RGBA"), tmp_path / "a.png")))
    assert tuple(got[0, 0]) == (255, 255, 255)
    assert got[0, 1, 0] == 255 and 120 <= got[0, 1, 1] <= 135 and got[0, 1, 1] == got[0, 1, 2]
    assert tuple(got[1, 0]) == (0, 0, 255)


def test_palette_with_transparency_and_la(tmp_path):
    p = Image.new("P", (2, 1))
    p.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    p.putpixel((0, 0), 0)
    p.putpixel((1, 0), 1)
    p.info["transparency"] = 0
    got = np.asarray(load_image(_saved(p, tmp_path / "p.png", transparency=0)))
    assert tuple(got[0, 0]) == (255, 255, 255) and tuple(got[0, 1]) == (200, 10, 10)
    la = Image.fromarray(np.array([[[0, 0], [90, 255]]], np.uint8), "LA")
    got = np.asarray(load_image(_saved(la, tmp_path / "la.png")))
    assert tuple(got[0, 0]) == (255, 255, 255) and tuple(got[0, 1]) == (90, 90, 90)


@pytest.mark.parametrize("mode", ["1", "L", "P", "CMYK"])
def test_other_modes_become_rgb(tmp_path, mode):
    im = Image.new("RGB", (5, 3), (255, 255, 255)).convert(mode)
    suffix = "tiff" if mode == "CMYK" else "png"
    got = load_image(_saved(im, tmp_path / f"m.{suffix}"))
    assert got.mode == "RGB" and got.size == (5, 3)
    assert np.asarray(got).min() >= 250  # white stays white


def test_sixteen_bit_is_rescaled_not_saturated(tmp_path):
    a = np.array([[0, 16384, 32768, 65535]], np.uint16)
    got = np.asarray(load_image(_saved(Image.fromarray(a), tmp_path / "g16.png")))[0, :, 0]
    assert list(got) == [0, 64, 128, 255]


def test_float_and_int32_images_use_their_range():
    f = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F")
    assert list(np.asarray(load_image(f))[0, :, 0]) == [0, 128, 255]
    i = Image.fromarray(np.array([[-100, 0, 100]], np.int32), "I")
    assert list(np.asarray(load_image(i))[0, :, 0]) == [0, 128, 255]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"])
def test_every_format_loads(tmp_path, fmt):
    im = Image.new("RGB", (12, 8), (200, 40, 40))
    got = load_image(_saved(im, tmp_path / f"x.{fmt.lower()}", format=fmt))
    assert got.mode == "RGB" and got.size == (12, 8)
    assert abs(int(np.asarray(got)[4, 6, 0]) - 200) < 12


def test_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (6, 6), c) for c in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    r, g, b = np.asarray(load_image(path))[3, 3]
    assert r > 200 and g < 30 and b < 30


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = _saved(Image.fromarray(a), tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    got = np.asarray(load_image(path))
    assert got.shape[:2] == (40, 20)  # portrait after rotation
    assert got[5, 10].mean() > 200 and got[35, 10].mean() < 50  # the white half is now on top


def _png_header_only(width: int, height: int, depth: int = 8, colour: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def test_a_huge_image_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(60_000, 60_000))
    start = time.perf_counter()
    with pytest.raises(BadInput, match="bomb.png.*limit"):
        load_image(path)
    assert time.perf_counter() - start < 1.0
    small = _saved(Image.new("RGB", (100, 100)), tmp_path / "small.png")
    with pytest.raises(BadInput, match="10,000 pixels is over the limit of 5,000"):
        load_image(small, max_pixels=5000)
    assert load_image(small, max_pixels=10_000).size == (100, 100)


def test_a_larger_limit_lets_pillow_open_more(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    path = tmp_path / "wide.png"
    path.write_bytes(_png_header_only(20_000, 10_000, depth=1, colour=0))  # 200 Mpx, 1-bit: over twice Pillow's limit
    with pytest.raises(BadInput, match="wide.png: image is over the pixel limit"):
        load_image(path)
    with pytest.raises(BadInput, match="wide.png: cannot read image"):  # allowed, then the pixel data is missing
        load_image(path, max_pixels=300_000_000)
    assert Image.MAX_IMAGE_PIXELS == before  # the global limit is restored


def test_bad_files_name_the_file(tmp_path):
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good, "PNG", compress_level=0)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    with pytest.raises(BadInput, match="cut.png"):
        load_image(cut)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(BadInput, match="notes.jpg: not an image"):
        load_image(text)
    with pytest.raises(BadInput, match="missing.png"):
        load_image(tmp_path / "missing.png")


def test_find_images_folders_globs_and_files(tmp_path):
    for name in ("b.png", "a.jpg", "c.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in find_images([tmp_path])] == ["a.jpg", "b.png"]
    assert [p.name for p in find_images([str(tmp_path / "*.png")])] == ["b.png"]
    assert [p.name for p in find_images([tmp_path / "c.txt"])] == ["c.txt"]  # a named file is read, then judged
    with pytest.raises(BadInput, match="no images"):
        find_images([tmp_path / "sub"])
    with pytest.raises(BadInput, match="no files match"):
        find_images([str(tmp_path / "*.gif")])
    with pytest.raises(BadInput, match="no such image"):
        find_images([tmp_path / "nope.png"])


def test_view_box_follows_resize_and_centre_crop():
    assert view_box({"do_center_crop": False}, (300, 200)) == (0, 0, 300, 200)
    # CLIP: shortest edge to 224, then a 224 crop -> the central 200x200 of a 300x200 image
    clip = {"do_center_crop": True, "size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}}
    assert view_box(clip, (300, 200)) == pytest.approx((50, 0, 250, 200))
    # DeiT: resize to 256x256, crop 224 -> the central 7/8 of each side
    deit = {"do_center_crop": True, "size": {"height": 256, "width": 256}, "crop_size": {"height": 224, "width": 224}}
    assert view_box(deit, (256, 512)) == pytest.approx((16, 32, 240, 480))


def test_grid_and_pixels():
    grid = np.zeros((2, 2), np.float32)
    grid[0, 1] = 1.0
    big = upsample(grid, (40, 20))
    assert big.shape == (20, 40) and big.min() >= 0 and big.max() <= 1
    assert big[:10, 20:].mean() > big[10:, :20].mean()
    placed = to_pixels(grid, (50, 30), (5, 5, 45, 25))
    assert placed.shape == (30, 50) and placed[:5].max() == 0 and placed[:, :5].max() == 0
    mask = np.zeros((8, 8), bool)
    mask[:4, :2] = True
    assert patch_fraction(mask, (2, 2)).tolist() == [[0.5, 0.0], [0.0, 0.0]]
    with pytest.raises(BadInput):
        patch_fraction(np.zeros((7, 8), bool), (2, 2))
