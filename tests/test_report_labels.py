"""Token labels stamped from cached bitmaps onto a head-view canvas."""

from __future__ import annotations

import numpy as np

from attnviz.report.labels import sprite, stamp
from attnviz.report.paint import _painter, _side


def test_sprites_turn_words_and_keep_single_characters_upright():
    word = sprite("attention", ("DejaVu Sans",), 12, False)
    assert word.shape[0] > word.shape[1] and word.max() > 200  # turned: taller than wide, and inked
    flat = sprite("attention", ("DejaVu Sans",), 12, True)
    assert flat.shape == word.shape[::-1]
    assert sprite("我", ("Noto Sans CJK SC", "DejaVu Sans"), 12, True).max() > 200


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
