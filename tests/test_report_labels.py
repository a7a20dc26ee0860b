"""Token labels stamped from cached bitmaps onto the blitted head-view canvas (render/headview.py)."""

from __future__ import annotations

import numpy as np

from attnviz.render.headview import HeadView, nice_ceiling, painter, side_inches
from attnviz.render.labels import sprite, stamp


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
    p = painter(side_inches(6), 100)
    matrix = np.eye(6, dtype=np.float32)
    blank = p.rgb(HeadView(matrix, [""] * 6, [""] * 6, "x"))
    drawn = p.rgb(HeadView(matrix, tokens, tokens, "x"))
    changed = np.argwhere((blank != drawn).any(-1))  # (row, col) pixels the labels inked
    h = drawn.shape[0]
    x0, y0 = p.ax.bbox.x0, h - p.ax.bbox.y0
    assert len(changed) > 0
    assert ((changed[:, 1] < x0) | (changed[:, 0] > y0)).all()  # only left of or under the axes
    left = changed[changed[:, 1] < x0]
    under = changed[changed[:, 0] > y0]
    assert len(left) and len(under)  # query labels on the left, key labels underneath


def test_queries_and_keys_are_labelled_apart():
    """Cross-attention (Q != K): key labels under the axes only, query labels left of it only."""
    p = painter(side_inches(5), 100)
    matrix = np.full((3, 5), 0.2, dtype=np.float32)  # (Q, K)
    blank = p.rgb(HeadView(matrix, [""] * 3, [""] * 5, "x"))
    only_keys = p.rgb(HeadView(matrix, [""] * 3, [f"k{i}" for i in range(5)], "x"))
    only_queries = p.rgb(HeadView(matrix, [f"q{i}" for i in range(3)], [""] * 5, "x"))
    h = blank.shape[0]
    x0, y0 = p.ax.bbox.x0, h - p.ax.bbox.y0
    keys = np.argwhere((blank != only_keys).any(-1))
    queries = np.argwhere((blank != only_queries).any(-1))
    assert len(keys) and (keys[:, 0] > y0).all() and (keys[:, 1] >= x0 - 1).all()
    assert len(queries) and (queries[:, 1] < x0).all() and (queries[:, 0] <= y0 + 1).all()


def test_colour_scale_tops_are_nice_and_close_above_the_maximum():
    for value, top in [(0.1147, 0.12), (0.99, 1.0), (0.031, 0.032), (1.0, 1.0), (0.5, 0.6), (0.0, 1.0)]:
        assert abs(nice_ceiling(value) - top) < 1e-9
    for value in (0.0013, 0.07, 0.333, 0.81, 2.5):
        top = nice_ceiling(value)
        assert value <= top <= value * 1.34
        assert all(len(f"{q * top:.3g}".rstrip("0")) <= 6 for q in (0.25, 0.5, 0.75))


def test_heatmap_is_scaled_to_the_items_maximum():
    p = painter(side_inches(4), 100)
    weak = np.full((4, 4), 0.05, dtype=np.float32)
    weak[0, 0] = 0.1  # the scale tops out at 0.1: this cell is drawn in the ramp's top colour
    rgb = p.rgb(HeadView(weak, list("abcd"), list("abcd"), "x"))
    x, y = p.ax.transData.transform((0, 0))
    top_colour = np.array([253, 231, 37])  # viridis at 1.0
    assert np.abs(rgb[rgb.shape[0] - int(y), int(x)].astype(int) - top_colour).max() <= 3
