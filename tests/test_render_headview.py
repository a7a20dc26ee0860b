"""The one head-view renderer (render/headview.py): the same bytes from heatmap and report, one label limit,
vector formats, and the snapshot drift panels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.render import headview
from attnviz.render.headview import HeadView, drift_png, head_figure, head_png, painter, side_inches
from attnviz.render.style import LABEL_CHARS, MAX_LABELS

runner = CliRunner()
TEXT = "the movie was not good 不好"


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.mark.parametrize("layer,head", [(1, 2), (-1, 0)])
def test_heatmap_and_report_write_the_same_head_png(tmp_path, monkeypatch, layer, head):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_text(TEXT + "\n", encoding="utf-8")
    where = ["--model", "toy-sentiment", "--layer", str(layer), "--head", str(head)]
    res = runner.invoke(app, ["heatmap", TEXT, "--out", "h.png", *where])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["report", "in.txt", "--out", "rep", "--no-html", *where])
    assert res.exit_code == 0, res.output
    [item] = (tmp_path / "rep" / "items").glob("*/head.png")
    heat = (tmp_path / "h.png").read_bytes()
    assert heat[:4] == b"\x89PNG" and item.read_bytes() == heat


def test_a_reused_figure_draws_the_same_bytes_as_a_fresh_one():
    rng = np.random.default_rng(0)
    view = HeadView(rng.random((7, 7), dtype=np.float32), list("abcdefg"), list("abcdefg"), "m · layer 0 · head 0")
    painter.cache_clear()
    fresh = head_png(view)
    head_png(HeadView(rng.random((7, 7), dtype=np.float32) * 3, list("ghijklm"), list("nopqrst"), "other"))
    assert head_png(view) == fresh


def test_one_label_limit_for_png_and_vector(monkeypatch):
    tokens = [f"token{i}-{'x' * (i % 20)}" for i in range(200)]
    matrix = np.full((200, 200), 1 / 200, dtype=np.float32)
    view = HeadView(matrix, tokens, tokens, "long")
    stamped = {}
    import attnviz.render.labels as labels

    real = labels.draw_labels

    def spy(rgb, ax, keys, queries, *rest):
        stamped.update(keys=[t for _, t in keys], queries=[t for _, t in queries])
        real(rgb, ax, keys, queries, *rest)

    monkeypatch.setattr(labels, "draw_labels", spy)
    head_png(view)
    ax = head_figure(view).axes[0]
    drawn = [t.get_text() for t in ax.get_xticklabels()]
    assert stamped["keys"] == drawn == stamped["queries"] == [t.get_text() for t in ax.get_yticklabels()]
    assert 0 < len(drawn) <= MAX_LABELS and max(map(len, drawn)) == LABEL_CHARS
    assert "token4-xxxx" in drawn and any(t.endswith("…") for t in drawn)  # short ones whole, long ones cut


def _maps(tokens: list[str]):
    import torch

    from attnviz.maps import AttentionMaps

    n = len(tokens)
    weights = torch.full((2, 1, 2, n, n), 1.0 / n)  # (layer, batch, head, query, key)
    return AttentionMaps(weights=weights, mask=torch.ones(1, n, dtype=torch.long), tokens=[tokens],
                         layers=[0, 1], heads=[0, 1], model="m")


@pytest.mark.parametrize("view", ["head", "layer", "mean"])
def test_other_views_share_the_label_limit(view):
    from attnviz.render import render_view

    n = 200 if view == "head" else 12  # the grid views label only short inputs
    fig, _ = render_view(_maps([f"{'long' * (i % 6)}{i}" for i in range(n)]), view, layer=0)
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels() + ax.get_xticklabels()]
    labels = [t for t in labels if t and not t[0].isdigit()]  # token labels, not colour-scale numbers
    assert 0 < len(labels) and all(len(t) <= LABEL_CHARS for t in labels)
    assert any(t.endswith("…") for t in labels)
    assert max(len(ax.get_yticklabels()) for ax in fig.axes) <= MAX_LABELS


@pytest.mark.parametrize("fmt", ["svg", "pdf"])
def test_vector_head_views_are_byte_stable(tmp_path, fmt):
    out = tmp_path / f"h.{fmt}"
    args = ["heatmap", TEXT, "--model", "toy-sentiment", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    first = out.read_bytes()
    assert runner.invoke(app, args).exit_code == 0
    assert out.read_bytes() == first and first.startswith(b"<?xml" if fmt == "svg" else b"%PDF")


def test_figure_and_png_use_one_layout():
    view = HeadView(np.eye(5, dtype=np.float32), list("abcde"), list("abcde"), "t")
    fig = head_figure(view)
    w, h = fig.get_size_inches()
    rgb = _pixels(head_png(view, dpi=50))
    assert rgb.shape[:2] == (round(h * 50), round(w * 50))
    assert h == side_inches(5) and w == h + headview.EXTRA_WIDTH


def test_drift_panels_share_a_scale_and_show_the_difference():
    base = np.full((4, 4), 0.1, dtype=np.float32)
    base[0, 0] = 0.8
    cur = base * 0.5  # same pattern at half the height: on one shared scale it must look darker
    rgb = _pixels(drift_png(base, cur, list("abcd"), list("abcd"), "encoder layer 0 head 0", dpi=60))
    one = painter(side_inches(4), 60, "viridis", "attention weight")  # the one that drew the first two
    width = round(one.fig.get_size_inches()[0] * 60)
    assert rgb.shape[1] == 3 * width
    x, y = one.ax.transData.transform((0, 0))
    row = rgb.shape[0] - int(y)
    at = [rgb[row, int(x) + k * width].astype(int) for k in range(3)]
    viridis_top, magma_top = np.array([253, 231, 37]), np.array([252, 253, 191])
    assert np.abs(at[0] - viridis_top).max() <= 3  # baseline's maximum tops the shared scale
    assert np.abs(at[1] - viridis_top).max() > 60  # current's half is well below it
    assert np.abs(at[2] - magma_top).max() <= 3  # the largest difference tops the magma scale
