"""What a device map costs on CPU: capture of all layers with MiniLM placed by accelerate against the same model
loaded on one device, same batch.

    python3 benchmarks/bench_offload.py [--batch 8] [--words 32] [--repeat 15]

Two placements, each against the single-device run (ratios, lower is better; the median of per-round ratios of
interleaved runs, with their range): every layer mapped to "cpu" (accelerate's hooks alone), and layers 3-5
offloaded to "disk" (their weights read back from the safetensors file for every forward). The captures are
checked equal first.
"""

from __future__ import annotations

import argparse

from common import Ratio, interleaved, median_ms

import torch

from attnviz.models import load_model
from bench_capture import capture_fn, sentences

LAYERS = 6  # all-MiniLM-L6-v2


def device_map(offloaded: set[int]) -> dict:
    """Module name -> "cpu" or "disk" for MiniLM's BertModel."""
    layers = {f"encoder.layer.{i}": "disk" if i in offloaded else "cpu" for i in range(LAYERS)}
    return {"embeddings": "cpu", **layers, "pooler": "cpu"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--words", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=15, help="interleaved rounds of the timing")
    args = ap.parse_args()
    torch.manual_seed(0)
    models = {"single": load_model("minilm", device="cpu"),
              "hooks": load_model("minilm", device="cpu", device_map=device_map(set())),
              "disk": load_model("minilm", device="cpu", device_map=device_map({3, 4, 5}))}
    texts = sentences(args.batch, args.words)
    cases = {}
    for name, loaded in models.items():
        batch = loaded.encode(texts).batch
        cases[name] = capture_fn(loaded, batch)
    want = cases["single"]()
    for name in ("hooks", "disk"):
        assert torch.equal(cases[name](), want), f"{name}: the capture differs from the single-device run"
    times, _ = interleaved(cases, args.repeat)
    seq = want.shape[-1]
    print(f"cpu, batch={args.batch} seq={seq}, MiniLM (6 layers x 12 heads), {args.repeat} interleaved rounds")
    for name, seconds in times.items():
        print(f"  {name:>6}: {median_ms(seconds)}")
    print(f"all layers mapped to cpu (hooks) / one device : {Ratio.of(times['hooks'], times['single'])}")
    print(f"layers 3-5 offloaded to disk / one device     : {Ratio.of(times['disk'], times['single'])}")


if __name__ == "__main__":
    main()
