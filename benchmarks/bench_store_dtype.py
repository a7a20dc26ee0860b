"""Peak memory of a full-map capture that stores float16 against one that stores float32, on a long input where
the stored maps dominate; and of recording one head of one layer (what `attnviz heatmap` records for the head
it draws) against the float32 capture of everything.

The Llama-shaped random model of bench_long.py (16 query heads, 4 KV heads, 4 layers, width 512), batch 1, on the
CPU, recorded as `attnviz capture` records it. Every measurement runs in a fresh child process (its own peak
resident memory); the stores are interleaved per round and ratios are taken per round (median and range).
Run: python3 benchmarks/bench_store_dtype.py [--lengths 2048,4096] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from common import Ratio, child_peak, report_peak

MODES = {"float32": ("float32", None), "float16": ("float16", None), "one-head": ("float16", [0])}


def run(mode: str, length: int) -> None:
    """One recorded forward pass at ``length`` tokens, storing as ``mode`` says, in this (child) process."""
    import torch

    from bench_long import build
    from attnviz.recording import recording

    torch.set_num_threads(2)
    model = build("full")
    ids = torch.randint(0, 1000, (1, length), generator=torch.Generator().manual_seed(1))
    store, chosen = MODES[mode]

    def forward():
        with torch.inference_mode():
            with recording(model, layers=chosen, heads=chosen, store_dtype=getattr(torch, store)) as rec:
                model(input_ids=ids)
            kept = rec.stacked("encoder")  # (layer, 1, head, L, L)
            assert kept is not None and kept.dtype == getattr(torch, store)

    report_peak(forward)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", default="2048,4096")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for n in (int(x) for x in args.lengths.split(",")):
        found = {m: [] for m in MODES}
        for r in range(args.rounds):
            order = list(MODES)[r % len(MODES):] + list(MODES)[: r % len(MODES)]
            for m in order:
                found[m].append(child_peak([__file__, "--child", m, str(n)]))
        full = 4 * 16 * n * n * 4  # bytes of the float32 maps kept
        mib = {m: statistics.median(v) / 2**20 for m, v in found.items()}
        print(f"{n:6d} tokens (float32 maps {full / 2**20:.0f} MiB): peak float32 {mib['float32']:.0f} MiB, "
              f"float16 {mib['float16']:.0f} MiB, one head of one layer {mib['one-head']:.0f} MiB", flush=True)
        print(f"        float16 / float32 peak: {Ratio.of(found['float16'], found['float32'])}; "
              f"one head / float32 peak: {Ratio.of(found['one-head'], found['float32'])}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        run(sys.argv[2], int(sys.argv[3]))
    else:
        main()
