"""Notebook views: docs/notebook.ipynb run by nbclient on a real kernel, every HTML output opened in Debian's
Chromium (Playwright, headless) with the network blocked; hand-made results for escaping, limits and packing."""

from __future__ import annotations

import base64
import json
import re
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import attnviz
from attnviz.attribution.results import Attribution, CamResult
from attnviz.errors import BadInput
from attnviz.maps import AttentionMaps
from attnviz.notebook import build

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "notebook.ipynb"

INJECT = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "&lt;b&gt;", "</script><b>x"]


@pytest.fixture(scope="module")
def executed():
    import nbclient
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    return nb


def _outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "data" in o]


class Page:
    """One page of notebook outputs; records errors, dialogs and every request that is not the file itself."""

    def __init__(self, browser, tmp_path: Path, fragments: list[str]):
        path = tmp_path / f"page{len(list(tmp_path.iterdir()))}.html"
        path.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>' + "\n".join(fragments)
                        + "</body></html>", encoding="utf-8")
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.errors, self.dialogs, self.foreign = [], [], []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.route("**/*", self._route)
        self.page.goto(path.as_uri())
        self.page.wait_for_function("[...document.querySelectorAll('.attnviz-nb')].every(r => r.dataset.state !== 'drawing')")

    def _route(self, route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort()

    def states(self) -> list[str]:
        return self.page.eval_on_selector_all(".attnviz-nb", "rs => rs.map(r => r.dataset.state)")

    def canvas(self, selector: str) -> str:
        return self.page.eval_on_selector(selector, "c => c.toDataURL()")

    def clean(self) -> None:
        assert self.errors == [] and self.dialogs == [] and self.foreign == []


def test_the_notebook_runs_and_every_result_shows_itself(executed):
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(o.output_type != "error" for c in code for o in c.outputs)
    outputs = _outputs(executed)
    assert len(outputs) == len(code)  # one view per cell: maps, model view, Chinese, attribution x2, long, CAM
    for out in outputs:
        data = out["data"]
        assert {"text/html", "image/png", "text/plain"} <= set(data)
        assert base64.b64decode(data["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
        page = data["text/html"]
        assert "://" not in page and "require(" not in page  # nothing is fetched from anywhere
    ids = [re.search(r'id="(attnviz-[0-9a-f]+)"', o["data"]["text/html"]).group(1) for o in outputs]
    assert len(set(ids)) == len(ids)
    assert all(f'"{c}"' in outputs[2]["data"]["text/html"] for c in "这部电影很无聊")  # the Chinese tokens, as text


def test_every_output_draws_offline_and_answers_the_layer_and_head_choice(executed, browser, tmp_path):
    pages = [o["data"]["text/html"] for o in _outputs(executed)]
    for html in pages:
        p = Page(browser, tmp_path, [html])
        interactive = "<script>" in html
        assert p.states() == ["drawn" if interactive else "static"]
        if p.page.query_selector(".av-layer") is None:
            p.clean()
            continue
        heat = ".av-head-canvas" if p.page.query_selector(".av-head-canvas") else \
            ".av-model-canvas" if p.page.query_selector(".av-model-canvas") else ".av-overview-canvas"
        first = p.canvas(heat)
        p.page.select_option(".av-layer", "0")
        after_layer = p.canvas(heat)
        p.page.select_option(".av-head", "1")
        assert len({first, after_layer, p.canvas(heat)}) == 3
        assert p.page.is_hidden(".av-static") and p.page.is_visible(".av-live")
        p.clean()


def test_hovering_a_token_colours_where_it_attends(executed, browser, tmp_path):
    p = Page(browser, tmp_path, [_outputs(executed)[2]["data"]["text/html"]])  # the Chinese head view
    keys = p.page.query_selector_all('.av-tokens[data-axis="k"] .av-tok')
    assert all(not k.get_attribute("style") or "background" not in k.get_attribute("style") for k in keys)
    p.page.hover('.av-tokens[data-axis="q"] .av-tok >> nth=1')
    assert p.page.get_attribute('.av-tokens[data-axis="q"] .av-tok >> nth=1', "class").endswith("on")
    shades = {k.evaluate("e => e.style.background") for k in keys}
    assert len(shades) > 2  # the keys are coloured by the hovered query's row
    p.page.hover(".av-head-canvas", position={"x": 5, "y": 5})
    assert "→" in p.page.inner_text(".av-info")
    p.clean()


def _maps(tokens: list[str], layers: int = 2, heads: int = 3, seed: int = 0) -> AttentionMaps:
    g = torch.Generator().manual_seed(seed)
    n = len(tokens)
    weights = torch.rand(layers, 1, heads, n, n, generator=g).softmax(-1)  # (L, B, H, Q, K)
    return AttentionMaps(weights=weights, mask=torch.ones(1, n), tokens=[tokens], layers=list(range(layers)),
                         heads=list(range(heads)), model="hand-made", num_layers=layers, num_heads=heads)


def test_two_views_in_one_page_do_not_interfere(browser, tmp_path):
    a, b = build(_maps(["a", "b", "c", "d"])), build(_maps(["e", "f", "g"], seed=1))
    p = Page(browser, tmp_path, [a.html, b.html])
    assert p.states() == ["drawn", "drawn"]
    second = p.canvas(".attnviz-nb >> nth=1 >> .av-head-canvas")
    p.page.select_option(".attnviz-nb >> nth=0 >> .av-layer", "0")
    assert p.page.eval_on_selector(".attnviz-nb >> nth=0 >> .av-head-canvas", "c => c.dataset.view") == "0:0"
    assert p.canvas(".attnviz-nb >> nth=1 >> .av-head-canvas") == second
    assert p.page.eval_on_selector(".attnviz-nb >> nth=1 >> .av-head-canvas", "c => c.dataset.view") == "1:0"
    p.clean()


def _attribution(tokens: list[str]) -> Attribution:
    n = len(tokens)
    faith = {"deletion_auc": 0.2, "insertion_auc": 0.8, "deletion": [], "insertion": [], "top1": True, "topk": 0.5}
    return Attribution(method="saliency", tokens=[tokens], scores=torch.linspace(-1, 1, n)[None], mask=torch.ones(1, n),
                       target=["label <i>x</i>"], prediction=["<b>p</b>"], probability=[0.5],
                       extra={"model": "<script>alert(2)</script>", "faithfulness": [faith]})


def test_injection_strings_in_tokens_stay_text(browser, tmp_path):
    maps = _maps(INJECT)
    views = [build(maps), build(maps, view="statistics"), build(_attribution(INJECT))]
    p = Page(browser, tmp_path, [v.html for v in views])
    assert p.states() == ["drawn", "drawn", "static"]
    assert p.page.eval_on_selector_all('.attnviz-nb >> nth=0 >> .av-tokens[data-axis="q"] .av-tok',
                                        "s => s.map(e => e.textContent)") == INJECT
    assert p.page.eval_on_selector_all(".av-row .av-tok", "s => s.map(e => e.textContent)") == INJECT
    assert "<script>alert(2)</script>" in p.page.inner_text(".attnviz-nb >> nth=2 >> .av-caption")
    assert p.page.query_selector_all("img[src='x'], b, i") == []
    p.page.hover(".attnviz-nb >> nth=0 >> .av-tok >> nth=1")
    p.clean()  # no dialog: nothing ran


def test_statistics_only_maps_show_the_long_views(browser, tmp_path):
    maps = replace(_maps([f"t{i}" for i in range(40)], layers=3).with_statistics(overview=8), weights=None)
    shown = build(maps)
    assert "av-data" in shown.html and json.loads(_data(shown.html))["kind"] == "statistics"
    with pytest.raises(BadInput, match="per-head statistics only"):
        build(maps, view="head")
    p = Page(browser, tmp_path, [shown.html, build(maps, view="positions", layer=0, head=None).html])
    assert p.states() == ["drawn", "drawn"]
    first = p.canvas(".av-overview-canvas")
    curve = p.canvas('.attnviz-nb >> nth=0 >> canvas[data-stat="sink"]')
    p.page.select_option(".attnviz-nb >> nth=0 >> .av-layer", "0")
    assert p.canvas(".av-overview-canvas") != first
    assert p.canvas('.attnviz-nb >> nth=0 >> canvas[data-stat="sink"]') != curve
    assert p.page.query_selector(".attnviz-nb >> nth=1 >> .av-overview-canvas") is None
    p.clean()


def _data(html: str) -> str:
    return re.search(r'<script type="application/json" class="av-data">(.*?)</script>', html, re.S).group(1)


def test_weights_travel_compressed_and_come_back_within_one_step():
    maps = _maps([f"w{i}" for i in range(30)], layers=2, heads=4)
    packed = json.loads(_data(build(maps).html))["packs"]["att"]
    q = np.frombuffer(zlib.decompress(base64.b64decode(packed["data"])), dtype=np.uint8).reshape(8, 900)
    lo, hi = np.array(packed["lo"])[:, None], np.array(packed["hi"])[:, None]
    want = maps.weights[:, 0].reshape(8, 900).numpy()  # (L*H, Q*K)
    assert np.abs(lo + q * (hi - lo) / 255 - want).max() <= (hi - lo).max() / 255 * 0.51 + 1e-6


def test_above_the_size_limit_a_note_and_a_png():
    maps = _maps([f"w{i}" for i in range(30)])
    small = build(maps, max_bytes=5_000)
    assert "<script" not in small.html and "above the limit" in small.html
    bundle = small._repr_mimebundle_()
    assert base64.b64decode(bundle["image/png"])[:4] == b"\x89PNG"
    assert "data:image/png;base64," in bundle["text/html"]
    assert "<script" in build(maps).html


def test_results_show_themselves_through_the_public_api():
    maps = attnviz.AttentionMaps  # any public name attaches the reprs
    assert hasattr(maps, "_repr_mimebundle_") and hasattr(Attribution, "_repr_html_") and hasattr(CamResult, "_repr_html_")
    bundle = _maps(["a", "b"])._repr_mimebundle_(include=["text/html"])
    assert list(bundle) == ["text/html"] and "attnviz-nb" in bundle["text/html"]
    assert attnviz.show(_maps(["a", "b"]), view="model").html.count('class="attnviz-nb"') == 1  # no IPython: returned
    with pytest.raises(BadInput, match="cannot show"):
        attnviz.show("a string")
    with pytest.raises(BadInput, match="head 9"):
        attnviz.show(_maps(["a", "b"]), head=9)


def test_a_cam_result_lies_over_its_images():
    from PIL import Image

    result = CamResult(method="rollout", maps=torch.rand(2, 4, 4), target=["circle", "<b>x</b>"], target_index=[0, 1],
                       top=[[("circle", 0.9)], []], prefix=1, boxes=[(0, 0, 64, 64)] * 2)
    images = [Image.new("RGB", (64, 64), (200, 30, 30)), Image.new("RGB", (64, 64), (30, 30, 200))]
    shown = build(result, images=images)
    assert shown.html.count("data:image/jpeg") == 4 and "&lt;b&gt;x&lt;/b&gt;" in shown.html
    assert shown.png[:4] == b"\x89PNG"
    assert build(result).html.count("data:image/jpeg") == 2  # the maps alone
    with pytest.raises(BadInput, match="1 images given for 2 maps"):
        build(result, images=images[:1])


def test_the_notebook_layer_is_light_until_something_is_shown():
    import subprocess
    import sys

    code = "import sys, attnviz.notebook; print(sorted(m for m in ('matplotlib', 'IPython') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_an_explained_generation_shows_its_matrix(browser, tmp_path):
    from attnviz.attribution.generation import GeneratedAttribution

    tokens = ["a", INJECT[0], "b", INJECT[1], "c"]  # prompt of 3, answer of 2
    steps = [{"token": INJECT[1], "position": 3, "probability": 0.5, "entropy": 1.0},
             {"token": "c", "position": 4, "probability": 0.25, "entropy": 2.0}]
    result = GeneratedAttribution(model="toy", prompt="a <b>", tokens=tokens, prompt_length=3, steps=steps,
                                  scores={"attention": [[0.1, -0.5, 1.0], [1.0, 0.0, -1.0, 0.5]]})
    shown = result._repr_mimebundle_()
    assert shown["image/png"] and shown["text/html"].count("<td style") == 4 * 2  # 4 sources x 2 steps
    p = Page(browser, tmp_path, [shown["text/html"]])
    cells = p.page.eval_on_selector_all("table.av-matrix td", "ts => ts.map(t => t.style.background)")
    assert len(set(cells)) == 7 and cells[6] == "rgb(244, 244, 244)"  # position 3 is not seen by step 0
    assert p.page.eval_on_selector_all("table.av-matrix tr > th:first-child", "s => s.map(e => e.textContent)")[1:] \
        == tokens[:4]
    assert p.page.query_selector_all("img[src='x'], b") == []
    p.clean()
