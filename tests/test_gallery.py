"""`attnviz gallery`: every variant drawn, masks visible in the weights, the index page escaped."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

from attnviz.attention.kernel import MASKS
from attnviz.cli import app
from attnviz.report.gallery import build_panels, index_html

runner = CliRunner()


def test_panels_show_each_mask_and_score():
    panels = {p.name: p for p in build_panels("the food was not bad", layer=0)}
    assert len(panels) == 9 and {p.group for p in panels.values()} == {"mask pattern", "score function"}
    n = len(panels["global"].keys)
    for name, pattern, opts in (("causal", "causal", {}), ("local window", "local", {"window": 3}),
                                ("strided sparse", "strided", {"stride": 4})):
        forbidden = ~MASKS.get(pattern)(n, n, "cpu", **opts)  # (Q, K)
        assert float(panels[name].weights[forbidden].abs().max()) < 1e-6, name
        assert float(panels[name].weights[~forbidden].min()) > 0, name
    axial = panels["axial (image)"]
    forbidden = ~MASKS.get("axial")(len(axial.keys), len(axial.keys), "cpu", grid=8, prefix=1)
    assert float(axial.weights[forbidden].abs().max()) < 1e-6 and axial.keys[0] == "[CLS]"
    for p in panels.values():
        torch.testing.assert_close(p.weights.sum(-1), torch.ones(p.weights.shape[0]), atol=1e-4, rtol=0)
    # Same weights, different scores: the variants really differ.
    assert not torch.allclose(panels["scaled dot-product"].weights, panels["dot-product"].weights, atol=1e-3)
    assert not torch.allclose(panels["scaled dot-product"].weights, panels["cosine"].weights, atol=1e-3)


def test_index_page_escapes_everything(tmp_path):
    panels = build_panels("not good", layer=0)[:1]
    page = index_html(panels, [tmp_path / "a.png"], '<script>alert("x")</script>')
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_cli_gallery_writes_pngs_and_index(tmp_path):
    out = tmp_path / "g"
    res = runner.invoke(app, ["gallery", "--out", str(out), "--text", "这部电影不好 <b>"])
    assert res.exit_code == 0, res.output
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "gallery.png" in pngs and len(pngs) == 10
    assert all((out / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    page = (out / "index.html").read_text("utf-8")
    assert "&lt;b&gt;" in page and all(p in page for p in pngs)
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))


def test_cli_gallery_bad_input(tmp_path):
    for args in (["--layer", "7"], ["--text", "   "]):
        res = runner.invoke(app, ["gallery", "--out", str(tmp_path / "x"), *args])
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert not (tmp_path / "x").exists()
