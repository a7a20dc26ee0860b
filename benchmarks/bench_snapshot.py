"""`snapshot check` of 100 inputs on MiniLM against capturing the same inputs (target: <= 1.2x).

Both run in one process on a loaded model: the baseline is ``capture()`` of the 100 inputs in the
batches that check uses; check adds reading 100 baseline files, comparing every head, hashing the
weights and tokenizer for the context lines. Also shown: recording, and the HTML report of a drift.

    python3 benchmarks/bench_snapshot.py [--inputs 100] [--repeat 5]

Check and capture run interleaved; the ratio is the median of per-pair ratios, with their range.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import Ratio, interleaved

import torch

from attnviz.recording import capture
from attnviz.models import load_model
from attnviz.snapshot import SnapshotSettings, Tolerance, check, record
from attnviz.snapshot.compare import compare
from attnviz.snapshot.html import render_html
from attnviz.snapshot.manifest import describe
from attnviz.snapshot.run import current
from attnviz.snapshot.store import baseline_path, load_baseline

SUBJECTS = ["The movie", "This book", "The music", "Our trip to the coast", "The new phone", "Her last album",
            "The service at the restaurant", "That lecture on compilers", "The hotel room", "His argument"]
VERDICTS = ["was not good", "was wonderful", "felt far too long", "surprised everyone", "was fine, I guess",
            "made me laugh twice", "could have been better", "was exactly what I needed", "left me cold",
            "was brilliant, but the ending was weak"]


def inputs(n: int) -> list[str]:
    return [f"{SUBJECTS[i % 10]} {VERDICTS[(i // 10 + i) % 10]}, said reviewer number {i}." for i in range(n)]


def overhead(loaded, texts, folder: Path, settings) -> dict[str, float]:
    """What check does besides capturing, each part timed alone (less sensitive to a busy machine)."""
    now = current(loaded, texts, settings)
    out = {}
    start = time.perf_counter()
    bases = [load_baseline(baseline_path(folder, b.key)) for b in now]
    out["reading baselines"] = time.perf_counter() - start
    start = time.perf_counter()
    for b, c in zip(bases, now):
        c.maps.weights = c.maps.weights + 1e-6  # not equal: the full comparison, no shortcut
        compare(b, c, Tolerance())
    out["comparing (no shortcut)"] = time.perf_counter() - start
    start = time.perf_counter()
    describe(loaded, settings, now, hashes=True)
    out["hashing weights + tokenizer (only when a check fails)"] = time.perf_counter() - start
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5, help="interleaved pairs")
    args = ap.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    loaded = load_model("minilm", device="cpu")
    texts = inputs(args.inputs)
    settings = SnapshotSettings()
    size = settings.batch_size
    capture(loaded, texts[:size])  # warm-up

    def capture_all():
        return [capture(loaded, texts[i : i + size]) for i in range(0, len(texts), size)]

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "snapshots"
        start = time.perf_counter()
        record(loaded, texts, folder, settings, update=True)
        t_record = time.perf_counter() - start
        times, out = interleaved({"capture": capture_all, "check": lambda: check(loaded, texts, folder)}, args.repeat)
        assert out["check"].ok, out["check"].summary()
        with torch.no_grad():
            loaded.model.encoder.layer[1].attention.self.query.weight += 1e-3
        parts = overhead(loaded, texts, folder, settings)
        drift = check(loaded, texts, folder)
        start = time.perf_counter()
        html = render_html(drift)
        t_html = time.perf_counter() - start
    caps, checks = times["capture"], times["check"]
    print(f"inputs: {len(texts)}  model: minilm (6 layers x 12 heads)  threads: {torch.get_num_threads()}")
    print(f"capture            {statistics.median(caps):7.3f} s   (baseline, median of {args.repeat})")
    print(f"snapshot check     {statistics.median(checks):7.3f} s   check / capture {Ratio.of(checks, caps)}  (target <= 1.2)")
    print("  of which, outside capture: " + ", ".join(f"{k} {v:.3f} s" for k, v in parts.items()))
    print(f"snapshot record    {t_record:7.3f} s   {t_record / statistics.median(caps):.2f}x capture (one run)")
    print(f"diff.html of drift {t_html:7.3f} s   ({len(html) // 1024} KiB, {len(drift.failed)} drifting inputs)")


if __name__ == "__main__":
    main()
