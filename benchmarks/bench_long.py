"""Long inputs: peak memory and time of a statistics capture (`--keep stats`) against a plain SDPA forward, and
against keeping full maps where those fit; the growth exponents of each with the input length.

A Llama-shaped random model (16 query heads, 4 KV heads, 4 layers, width 512), batch 1, on the CPU. Every
measurement runs in a fresh child process (its own peak resident memory); the modes are interleaved per round
and ratios are taken per round (median and range). Run: python3 benchmarks/bench_long.py [--lengths 1024,2048]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

from common import child_peak, report_peak

FULL_LIMIT = 4096  # full maps of 4 layers x 16 heads at 4K tokens are 4 GiB; beyond that they do not fit here


def build(mode: str):
    import torch
    import transformers as tf

    from attnviz.attention.hf import register

    config = tf.LlamaConfig(hidden_size=512, num_attention_heads=16, num_key_value_heads=4, num_hidden_layers=4,
                            intermediate_size=1024, vocab_size=1000, max_position_embeddings=32768)
    torch.manual_seed(0)
    return tf.AutoModel.from_config(config, attn_implementation="sdpa" if mode == "sdpa" else register()).eval()


def run(mode: str, length: int) -> None:
    """One forward pass of ``mode`` (sdpa, stats or full) at ``length`` tokens, in this (child) process."""
    import torch

    from attnviz.recording import recording
    from attnviz.recording.plan import Plan

    torch.set_num_threads(2)
    model = build(mode)
    ids = torch.randint(0, 1000, (1, length), generator=torch.Generator().manual_seed(1))

    def forward():
        start = time.perf_counter()
        with torch.inference_mode():
            if mode == "sdpa":
                model(input_ids=ids)
            else:
                with recording(model, plan=Plan(keep=mode)) as rec:
                    model(input_ids=ids)
                kept = rec.statistics("encoder") if mode == "stats" else rec.stacked("encoder")
                assert kept is not None
        print(f"seconds:{time.perf_counter() - start}", flush=True)

    report_peak(forward)


def measure(mode: str, length: int) -> tuple[int, float]:
    import subprocess

    out = subprocess.run([sys.executable, __file__, "--child", mode, str(length)], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    seconds = float(next(line for line in out.stdout.splitlines() if line.startswith("seconds:"))[8:])
    peak = int(next(line for line in out.stdout.splitlines() if line.startswith("peak-bytes:"))[11:])
    return peak, seconds


def exponent(lengths: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) against log(length): 1 grows linearly, 2 quadratically."""
    xs, ys = [math.log(n) for n in lengths], [math.log(max(v, 1e-9)) for v in values]  # seconds may be below 1
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", default="1024,2048,4096,8192")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    rows = {}
    for n in lengths:
        modes = ["sdpa", "stats"] + (["full"] if n <= FULL_LIMIT else [])
        found = {m: [] for m in modes}
        for r in range(args.rounds):
            for m in modes[r % len(modes):] + modes[: r % len(modes)]:
                found[m].append(measure(m, n))
        rows[n] = found
        base = found["sdpa"]
        line = [f"{n:6d} tokens: sdpa {statistics.median(p for p, _ in base) / 2**20:7.0f} MiB "
                f"{statistics.median(s for _, s in base):6.2f} s"]
        for m in modes[1:]:
            mem = [p / b for (p, _), (b, _) in zip(found[m], base)]
            sec = [s / b for (_, s), (_, b) in zip(found[m], base)]
            line.append(f"{m}: memory x{statistics.median(mem):.2f} ({min(mem):.2f}-{max(mem):.2f}), "
                        f"time x{statistics.median(sec):.2f} ({min(sec):.2f}-{max(sec):.2f})")
        print(" | ".join(line), flush=True)
    for m in ("sdpa", "stats", "full"):
        ns = [n for n in lengths if m in rows[n]]
        if len(ns) >= 2:
            peaks = [statistics.median(p for p, _ in rows[n][m]) for n in ns]
            times = [statistics.median(s for _, s in rows[n][m]) for n in ns]
            print(f"growth with length, {m}: memory L^{exponent(ns, peaks):.2f}, time L^{exponent(ns, times):.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        run(sys.argv[2], int(sys.argv[3]))
    else:
        main()
