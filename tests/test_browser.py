"""report.html in a real browser: Debian's Chromium driven by Playwright, offline, headless."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import text_classifier

from attnviz.report.html import encode_attention, thumbnail, write_html


INJECT = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


@pytest.fixture(scope="module")
def report_file(tmp_path_factory) -> Path:
    from attnviz.models import load_model
    from attnviz.report.batch import ReportConfig, run_report
    from attnviz.report.inputs import read_items

    tmp = tmp_path_factory.mktemp("browser")
    loaded = load_model(str(text_classifier(tmp / "bert")), device="cpu")
    src = tmp / "in.txt"
    src.write_text("\n".join(["the movie was not good but the music was wonderful", *INJECT, "我 喜 欢 电 影"]),
                   encoding="utf-8")
    run_report(loaded, read_items(src), ReportConfig(out=tmp / "out", views=("head",)))
    return tmp / "out" / "report.html"


class Watched:
    """A page that records console errors, page errors, dialogs and every request it tries."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.errors, self.dialogs, self.foreign = [], [], []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.route("**/*", self._route)

    def _route(self, route):
        url = route.request.url
        if url.startswith("file:"):
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def clean(self) -> None:
        assert self.errors == [] and self.dialogs == [] and self.foreign == []


def canvas(page, selector="#head-canvas") -> str:
    return page.eval_on_selector(selector, "c => c.toDataURL()")


def test_head_view_switches_and_hover(browser, report_file):
    w = Watched(browser)
    page = w.page
    page.goto(report_file.as_uri())
    page.click(".card >> nth=0")
    page.wait_for_selector("#tokens-to .tok")
    first = canvas(page)
    page.select_option("#layer", "0")
    after_layer = canvas(page)
    page.select_option("#head", "2")
    after_head = canvas(page)
    assert len({first, after_layer, after_head}) == 3
    assert page.eval_on_selector("#head-canvas", "c => c.dataset.view") == "0:2"
    page.hover("#tokens-to .tok >> nth=2")
    assert "on" in page.get_attribute("#tokens-to .tok >> nth=2", "class")
    backgrounds = page.eval_on_selector_all("#tokens-to .tok", "s => s.map(x => x.style.background)")
    assert all(backgrounds) and len(set(backgrounds)) > 1  # coloured by where token 2 attends
    assert canvas(page) != after_head  # row and column of the hovered token are outlined
    page.click("#model-canvas", position={"x": 5, "y": 5})  # layer 0, head 0 of the model view
    assert page.eval_on_selector("#head-canvas", "c => c.dataset.view") == "0:0"
    w.clean()


def test_injection_strings_stay_text(browser, report_file):
    w = Watched(browser)
    page = w.page
    page.goto(report_file.as_uri())
    texts = page.eval_on_selector_all(".card .text", "s => s.map(x => x.textContent)")
    assert INJECT[0] in texts and INJECT[1] in texts
    page.click(".card >> nth=1")
    page.wait_for_selector("#tokens-to .tok")
    assert page.text_content("#detail h2") == INJECT[0]
    page.click(".card >> nth=2")
    page.wait_for_selector("#tokens-to .tok")
    assert page.eval_on_selector_all('img[src="x"], #detail script', "s => s.length") == 0
    w.clean()


def shown_cards(page) -> list[str]:
    """Ids of the cards a reader can see: laid out with a size, whatever their attributes say."""
    return page.eval_on_selector_all(".card", "cs => cs.filter(c => c.getClientRects().length > 0 && "
                                     "getComputedStyle(c).visibility !== 'hidden').map(c => c.dataset.i)")


def test_search_and_label_filter_hide_the_other_cards(browser, report_file):
    w = Watched(browser)
    page = w.page
    page.goto(report_file.as_uri())
    assert len(shown_cards(page)) == 4
    page.fill("#search", "music")
    assert shown_cards(page) == ["0"] and page.text_content("#count") == "1 of 4 items"
    assert page.locator(".card >> nth=1").is_hidden()
    page.fill("#search", "")
    assert len(shown_cards(page)) == 4
    labels = page.eval_on_selector_all("#label-filter option", "o => o.map(x => x.value).filter(Boolean)")
    assert labels
    page.select_option("#label-filter", labels[0])
    shown = [page.get_attribute(f'.card[data-i="{i}"]', "data-label") for i in shown_cards(page)]
    assert shown and set(shown) == {labels[0]}
    w.clean()


def test_a_thousand_items_render_lazily(browser, tmp_path):
    rng = np.random.default_rng(0)
    records = []
    for i in range(1000):
        n = 6 + i % 20
        w = rng.random((2, 2, n, n)).astype(np.float32)
        w /= w.sum(-1, keepdims=True)
        records.append({"id": f"s{i}", "text": f"sentence {i}", "tokens": [f"t{k}" for k in range(n)],
                        "prediction": {"label": ["a", "b"][i % 2], "probability": 0.5}, "mean_entropy": 1.0,
                        "view": encode_attention(w, [0, 1]), "thumb": thumbnail(w[-1].mean(0))})
    path = write_html(tmp_path / "report.html", records, {"model": "synthetic"})
    page = Watched(browser)
    page.page.goto(path.as_uri())
    page.page.wait_for_timeout(200)
    drawn = page.page.eval_on_selector_all(".card canvas", "c => c.filter(x => x.width > 0 && x.width !== 300).length")
    assert 0 < drawn < 100  # only thumbnails scrolled into view were drawn
    assert json.loads(page.page.text_content("#count").split(" of ")[1].split()[0]) == 1000
    page.page.click(".card >> nth=999")
    page.page.wait_for_selector("#tokens-to .tok")
    page.clean()


def test_a_multi_label_item_shows_every_class_present(browser, tmp_path):
    from attnviz.models import load_model
    from attnviz.report.batch import ReportConfig, run_report
    from attnviz.report.inputs import read_items

    shapes = Path(__file__).resolve().parent.parent / "sample_inputs" / "shapes"
    run_report(load_model("toy-shapes", device="cpu"), read_items(shapes / "circle-square-cross.png"),
               ReportConfig(out=tmp_path / "out", views=("head",)))
    w = Watched(browser)
    w.page.goto((tmp_path / "out" / "report.html").as_uri())
    w.page.click(".card >> nth=0")
    facts = w.page.text_content("#detail .info")
    shown = facts.split("prediction ")[1].split(" · ")[0]  # "circle (1.0), cross (1.0), square (0.9931)"
    assert sorted(part.split(" (")[0] for part in shown.split(", ")) == ["circle", "cross", "square"]
    w.clean()


def test_a_long_item_shows_its_statistics_views_instead_of_a_canvas(browser, tmp_path, monkeypatch):
    """Inputs over LONG_TOKENS are captured as per-head statistics; their card opens the overview and positions."""
    from attnviz.models import load_model
    from attnviz.report.batch import ReportConfig, run_report
    from attnviz.report.inputs import read_items

    monkeypatch.setattr("attnviz.report.analyse.LONG_TOKENS", 6)
    loaded = load_model(str(text_classifier(tmp_path / "bert")), device="cpu")
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "short", "text": "the cat sat"}\n'
                   '{"id": "long", "text": "the movie was not good but the music was wonderful"}\n', encoding="utf-8")
    run_report(loaded, read_items(src), ReportConfig(out=tmp_path / "out", batch_size=1))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    files = {i["id"]: sorted(i["files"]) for i in summary["items"]}
    assert files == {"short": ["head"], "long": ["overview", "positions"]}
    w = Watched(browser)
    page = w.page
    page.goto((tmp_path / "out" / "report.html").as_uri())
    page.click(".card >> nth=1")
    page.wait_for_selector("figure.long img")
    sizes = page.eval_on_selector_all("figure.long img", "s => s.map(i => [i.alt, i.naturalWidth])")
    assert [a for a, _ in sizes] == ["overview", "positions"] and all(wd > 100 for _, wd in sizes)
    assert page.eval_on_selector_all("#head-canvas", "s => s.length") == 0
    page.click(".card >> nth=0")  # a short item still opens its canvas
    page.wait_for_selector("#tokens-to .tok")
    w.clean()
