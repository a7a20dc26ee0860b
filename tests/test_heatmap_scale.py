"""Colour that shows something on long inputs (render/scale.py), and only what is drawn is captured or read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import save
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.render.headview import HeadView, colour_of, head_png
from attnviz.render.scale import colour, is_sink
from attnviz.report.capture import CaptureConfig, HeatmapConfig, write_heatmap_files

runner = CliRunner()
FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _sink(n: int = 64) -> np.ndarray:
    """Causal rows that give 0.9 to the first key and share 0.1 over the rest."""
    m = np.zeros((n, n), dtype=np.float32)
    for q in range(n):
        m[q, 0] = 0.9 if q else 1.0
        if q:
            m[q, 1:q + 1] = 0.1 / q
    return m


def test_auto_leaves_a_sink_column_out_of_the_scale_and_says_so():
    m = _sink()
    assert is_sink(m)
    shown, label = colour_of(HeadView(m, ["t"] * 64, ["t"] * 64, "x"))
    assert shown.top <= 0.1 + 1e-6 and "key 0 left out of the scale" in label  # the rest gets the colours
    plain, plain_label = colour_of(HeadView(m, ["t"] * 64, ["t"] * 64, "x", scale="linear"))
    assert plain.top == pytest.approx(1.0) and plain_label == "attention weight"


def test_auto_is_plain_linear_without_a_sink():
    m = np.full((6, 6), 1 / 6, dtype=np.float32)
    auto = head_png(HeadView(m, list("abcdef"), list("abcdef"), "x"))
    assert auto == head_png(HeadView(m, list("abcdef"), list("abcdef"), "x", scale="linear"))


def test_log_rank_and_clip_scales():
    m = _sink(16)
    log = colour(m, "log", None, None, float, FRACTIONS)
    assert log.ticks[0] == "0.0001" and log.ticks[-1] == "1" and 0 < float(log.values[15, 5]) < 1
    rank = colour(m, "rank", None, None, float, FRACTIONS)
    assert float(rank.values[0, 0]) == pytest.approx(1.0) and float(rank.values[0, 5]) == 0.0
    clipped = colour(m, "linear", 50, None, float, FRACTIONS)
    assert clipped.top == pytest.approx(float(np.percentile(m, 50))) and "50th percentile" in clipped.note


def test_heatmap_takes_scale_options_and_refuses_bad_ones(tmp_path):
    folder = save("bert", tmp_path / "bert")
    for extra in (["--scale", "log"], ["--scale", "rank"], ["--clip-percentile", "99"]):
        res = runner.invoke(app, ["heatmap", "the cat sat", "--model", str(folder), "--out", str(tmp_path / "a.png"),
                                  *extra])
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["heatmap", "the cat", "--model", str(folder), "--scale", "loud"])
    assert res.exit_code == 2 and "--scale must be one of" in res.output
    res = runner.invoke(app, ["heatmap", "the cat", "--model", str(folder), "--clip-percentile", "0"])
    assert res.exit_code == 2 and "--clip-percentile" in res.output


def test_head_view_captures_only_the_drawn_layer_and_head(tmp_path):
    folder = save("bert", tmp_path / "bert")
    source = CaptureConfig(("the cat sat on the mat",), model=str(folder))
    head = write_heatmap_files(HeatmapConfig(source, layer=-1, head=2, out=tmp_path / "h.png")).maps
    assert head.layers == [1] and head.heads == [2] and head.weights.shape[:3] == (1, 1, 1)
    layer = write_heatmap_files(HeatmapConfig(source, view="layer", layer=0, out=tmp_path / "l.png")).maps
    assert layer.layers == [0] and layer.heads == [0, 1, 2, 3]
    full = write_heatmap_files(HeatmapConfig(source, view="model", out=tmp_path / "m.png")).maps
    assert torch.equal(full.weights[1, :, 2], head.weights[0, :, 0])  # the same numbers, recorded alone


def test_heatmap_from_reads_only_the_drawn_slice(tmp_path, monkeypatch):
    folder = save("bert", tmp_path / "bert")
    res = runner.invoke(app, ["capture", "the cat sat", "--model", str(folder), "--out", str(tmp_path / "m.safetensors")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["heatmap", "the cat sat", "--model", str(folder), "--layer", "1", "--head", "3",
                              "--out", str(tmp_path / "live.png")])
    assert res.exit_code == 0, res.output
    import safetensors

    read = []
    real = safetensors.safe_open

    class Spy:
        def __init__(self, *a, **k):
            self.f = real(*a, **k)

        def __enter__(self):
            self.f.__enter__()
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

        def get_tensor(self, name):
            read.append(name)
            return self.f.get_tensor(name)

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(safetensors, "safe_open", Spy)
    maps = write_heatmap_files(HeatmapConfig(tmp_path / "m.safetensors", layer=1, head=3,
                                             out=tmp_path / "from.png")).maps
    assert "weights" not in read and maps.weights.shape[:3] == (1, 1, 1)
    assert (tmp_path / "from.png").read_bytes() == (tmp_path / "live.png").read_bytes()
    res = runner.invoke(app, ["heatmap", "--from", str(tmp_path / "m.safetensors"), "--head", "9",
                              "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "head 9 is out of range" in res.output
