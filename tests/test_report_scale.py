"""report.html at corpus scale: above SPLIT_BYTES an index page plus item files loaded on demand, whose
first paint in headless Chromium stays under 2 s at 100,000 items; below it, one self-contained file."""

from __future__ import annotations

import time

import numpy as np

from attnviz.report import html as H
from test_browser import Watched


def _records(n: int) -> list[dict]:
    """Synthetic records as the writer gets them (a 2 x 2 head stack of 8 tokens each), varied by index."""
    rng = np.random.default_rng(0)
    views = []
    for k in range(16):
        w = rng.random((2, 2, 8, 8)).astype(np.float32)
        w /= w.sum(-1, keepdims=True)
        views.append((H.encode_attention(w, [0, 1]), H.thumbnail(w[-1].mean(0))))
    return [{"id": f"s{i}", "text": f"sentence number {i} about {['cats', 'dogs'][i % 2]}",
             "tokens": [f"t{k}" for k in range(8)], "prediction": {"label": ["neg", "pos"][i % 2], "probability": 0.5},
             "mean_entropy": 1.0, "view": views[i % 16][0], "thumb": views[i % 16][1]} for i in range(n)]


def test_below_the_limit_the_report_is_one_file(tmp_path):
    files = H.html_files(_records(50), {"model": "synthetic"})
    assert list(files) == ["report.html"] and b"'self'" not in files["report.html"]


def test_a_hundred_thousand_items_paint_in_under_two_seconds(browser, tmp_path):
    records = _records(100_000)
    path = H.write_html(tmp_path / "report.html", records, {"model": "synthetic"})
    chunks = sorted((tmp_path / H.DATA_DIR).iterdir())
    assert len(chunks) == 100_000 // H.CHUNK and path.stat().st_size < 16 * 2**20
    page = Watched(browser)
    start = time.perf_counter()
    page.page.goto(path.as_uri())
    page.page.wait_for_function("() => [...document.querySelectorAll('.card canvas')].some(c => c.width !== 300)")
    first_paint = time.perf_counter() - start
    assert first_paint < 2.0, first_paint
    print(f"first paint at 100,000 items: {first_paint:.2f} s")
    assert page.page.text_content("#count") == "100000 of 100000 items"
    assert page.page.eval_on_selector_all(".card", "c => c.length") < 60  # only the cards in view exist
    page.page.fill("#search", "s99999")
    page.page.click(".card >> nth=0")
    page.page.wait_for_selector("#tokens-to .tok")
    assert page.page.text_content("#detail h2") == "sentence number 99999 about dogs"
    page.page.select_option("#label-filter", "pos")
    assert page.page.text_content("#count") == "1 of 100000 items"
    page.page.fill("#search", "")
    page.page.select_option("#label-filter", "")
    page.page.eval_on_selector("#list", "l => { l.scrollTop = 61 * 50000; }")  # far down: its chunk loads
    page.page.wait_for_function("() => { const c = document.querySelector('.card[data-i=\"50000\"] canvas'); "
                                "return c && c.width !== 300; }")
    page.clean()


def test_a_split_report_from_a_run_opens_its_items_offline(browser, tmp_path, monkeypatch):
    from attnviz.models import load_model
    from attnviz.report.batch import ReportConfig, run_report
    from attnviz.report.inputs import read_items
    from conftest import text_classifier

    monkeypatch.setattr(H, "SPLIT_BYTES", 1)  # any run is a corpus now
    src = tmp_path / "in.txt"
    src.write_text("the movie was good\n<script>alert(1)</script>\na dog ran\n", encoding="utf-8")
    loaded = load_model(str(text_classifier(tmp_path / "bert")), device="cpu")
    result = run_report(loaded, read_items(src), ReportConfig(out=tmp_path / "out", views=()))
    assert [p.name for p in result.files] == ["summary.json", "summary.csv", "report.html"]
    assert [p.name for p in (tmp_path / "out" / H.DATA_DIR).iterdir()] == ["items-00000.js"]
    assert not list((tmp_path / "out").rglob("*.png"))  # --views may be empty: summaries and HTML only
    page = Watched(browser)
    page.page.goto((tmp_path / "out" / "report.html").as_uri())
    page.page.click(".card >> nth=1")
    page.page.wait_for_selector("#tokens-to .tok")
    assert page.page.text_content("#detail h2") == "<script>alert(1)</script>"
    page.clean()
