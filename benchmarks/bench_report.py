"""Batch report throughput, and the HTML report's size and first paint with 1,000 items.

    python3 benchmarks/bench_report.py [--items 200] [--workers 2] [--repeat 3]

Both runs do the same work on the same sentences with MiniLM: capture, one head-view PNG per item, and
report.html. The baseline draws every PNG on a new matplotlib figure in this process (the head view's
SVG/PDF figure; `attnviz heatmap` now writes PNGs through the report's renderer); the report reuses
figures in worker processes. The two run interleaved, each
into a new folder; the ratio is the median of per-pair ratios, with their range.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import Ratio, interleaved

import numpy as np

WORDS = ("the movie was not good but the music was wonderful and every token looks at every other token "
         "while a quick brown fox jumps over the lazy dog").split()


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(6, 30)))) for _ in range(n)]


def baseline(loaded, texts: list[str], out: Path) -> None:
    from attnviz.recording import capture
    from attnviz.render import figure_bytes, render_view
    from attnviz.io import write_atomic
    from attnviz.report.html import write_html

    out.mkdir()
    for i in range(0, len(texts), 16):
        maps = capture(loaded, texts[i:i + 16])
        for e in range(len(maps.tokens)):
            fig, _ = render_view(maps, "head", layer=-1, head=0, example=e)
            write_atomic(out / f"{i + e}.png", figure_bytes(fig, "png", dpi=100))
    write_html(out / "report.html", [], {"model": "baseline"})


def report(loaded, texts: list[str], out: Path, workers: int) -> None:
    from attnviz.report.batch import ReportConfig, run_report
    from attnviz.report.inputs import Item

    items = [Item(str(i), t) for i, t in enumerate(texts)]
    run_report(loaded, items, ReportConfig(out=out, workers=workers))


def html_paint(n: int, folder: Path) -> tuple[float, float]:
    """Size in MB of a 1,000-item report (MiniLM-shaped, 6 x 12 heads, 8-30 tokens) and seconds to paint."""
    from playwright.sync_api import sync_playwright

    from attnviz.report.html import encode_attention, thumbnail, write_html

    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        k = int(rng.integers(8, 31))
        w = rng.dirichlet(np.full(k, 0.3), size=(6, 12, k)).astype(np.float32)  # (L, H, n, n), peaked rows
        records.append({"id": str(i), "text": f"sentence {i}", "tokens": [f"t{j}" for j in range(k)],
                        "prediction": {"label": "x"}, "mean_entropy": 1.0,
                        "view": encode_attention(w, list(range(6))), "thumb": thumbnail(w[-1].mean(0))})
    path = write_html(folder / "big.html", records, {"model": "minilm"})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        start = time.perf_counter()
        page.goto(path.as_uri(), wait_until="load")
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        painted = time.perf_counter() - start
        browser.close()
    return path.stat().st_size / 1e6, painted


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved pairs")
    args = parser.parse_args()
    from attnviz.models import load_model

    loaded = load_model("minilm", device="cpu")
    texts = sentences(args.items)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        report(loaded, texts[:16], tmp / "warm", 0)  # first-call costs (fonts, kernels) out of both timings
        folders = (tmp / str(i) for i in itertools.count())  # a new output folder for every run
        times, _ = interleaved({"baseline": lambda out: baseline(loaded, texts, out),
                                "report": lambda out: report(loaded, texts, out, args.workers)},
                               args.repeat, setup=lambda: next(folders))
        size, paint = html_paint(1000, tmp)
    t_base, t_rep = statistics.median(times["baseline"]), statistics.median(times["report"])
    print(f"items                 {args.items}, {args.repeat} interleaved pairs, medians")
    print(f"baseline              {args.items / t_base:6.1f} items/s  (new figure per PNG, no workers)")
    print(f"report, {args.workers} workers      {args.items / t_rep:6.1f} items/s  (incl. worker start-up and report.html)")
    print(f"ratio baseline/report {Ratio.of(times['baseline'], times['report'])}")
    print(f"1,000-item HTML       {size:6.1f} MB, index painted in {paint:.2f} s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
