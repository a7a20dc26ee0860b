"""Token labels stamped from cached bitmaps onto a head-view canvas."""

from __future__ import annotations

import numpy as np

from attnviz.render.labels import sprite, stamp
from attnviz.report.paint import _painter, _side


def test_sprites_turn_words_and_keep_single_characters_upright():
    word = sprite("attention", ("DejaVu Sans",), 12, False)
    assert word.shape[0] > word.shape[1] and word.max() > 200  # turned: taller than wide, and inked
    flat = sprite("attention", ("DejaVu Sans",), 12, True)
    assert flat.shape == word.shape[::-1]
    cjk = sprite("我", ("Noto Sans CJK SC", "DejaVu Sans"), 12, True)
    boxed = sprite("我", ("DejaVu Sans",), 12, True)  # DejaVu has no CJK glyph: a narrow empty box
    assert cjk.max() > 200 and cjk.shape[1] > boxed.shape[1]


def test_stamp_blends_black_and_clips_at_the_edges():
    rgb = np.full((10, 10, 3), 255, dtype=np.uint8)
    alpha = np.full((4, 4), 255, dtype=np.uint8)
    stamp(rgb, alpha, -2, 8)  # hangs off the top and the right
    assert (rgb[:2, 8:] == 0).all() and (rgb[2:, :] == 255).all() and (rgb[:, :8] == 255).all()


def test_head_view_labels_land_beside_their_rows_and_columns():
    tokens = [f"t{i}" for i in range(6)]
    painter = _painter(_side(6), 100)
    matrix = np.eye(6, dtype=np.float32)
    blank = np.asarray(_png_rgb(painter.png(matrix, [""] * 6, "x")))
    drawn = np.asarray(_png_rgb(painter.png(matrix, tokens, "x")))
    changed = np.argwhere((blank != drawn).any(-1))  # (row, col) pixels the labels inked
    h = drawn.shape[0]
    x0, y0 = painter.ax.bbox.x0, h - painter.ax.bbox.y0
    assert len(changed) > 0
    assert ((changed[:, 1] < x0) | (changed[:, 0] > y0)).all()  # only left of or under the axes


def _png_rgb(data: bytes):
    import io

    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


def test_colour_scale_tops_are_nice_and_close_above_the_maximum():
    from attnviz.report.paint import nice_ceiling

    for value, top in [(0.1147, 0.12), (0.99, 1.0), (0.031, 0.032), (1.0, 1.0), (0.5, 0.6), (0.0, 1.0)]:
        assert abs(nice_ceiling(value) - top) < 1e-9
    for value in (0.0013, 0.07, 0.333, 0.81, 2.5):
        top = nice_ceiling(value)
        assert value <= top <= value * 1.34
        assert all(len(f"{q * top:.3g}".rstrip("0")) <= 6 for q in (0.25, 0.5, 0.75))


def test_heatmap_is_scaled_to_the_items_maximum():
    painter = _painter(_side(4), 100)
    weak = np.full((4, 4), 0.05, dtype=np.float32)
    weak[0, 0] = 0.1  # the scale tops out at 0.1: this cell is drawn in the ramp's top colour
    rgb = np.asarray(_png_rgb(painter.png(weak, ["a", "b", "c", "d"], "x")))
    x, y = painter.ax.transData.transform((0, 0))
    top_colour = np.array([253, 231, 37])  # viridis at 1.0
    assert np.abs(rgb[rgb.shape[0] - int(y), int(x)].astype(int) - top_colour).max() <= 3
