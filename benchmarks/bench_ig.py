"""Integrated gradients: attnviz vs captum (time, peak memory), --steps auto vs 50, IG vs saliency.

Every figure is a ratio against a baseline measured in the same run. Peak memory is the allocator's
peak on CUDA; on CPU it is the most activation memory autograd holds for one backward pass.

    python benchmarks/bench_ig.py [--model minilm] [--device cpu] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from attnviz.attribution import prepare, run_method
from attnviz.attribution.base import baseline
from attnviz.models import load_model

TEXTS = {
    "minilm": ["The movie was not good, but the music was wonderful.", "A quiet street after the rain.",
               "Stocks fell sharply on Monday as investors worried about rates.", "我喜欢这部电影"],
    "toy": ["the movie was not good", "这部电影很好", "really a lovely day and the food", "不开心"],
}
CHUNK = 32  # rows per forward pass, for both implementations
MODEL_PARAMS: list = []  # the benchmarked model's parameters, left out of the CPU memory figure


def peak(fn, device) -> tuple[float, int]:
    """(seconds, peak bytes allocated above the starting point) of one call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - t, torch.cuda.max_memory_allocated() - start
    # On CPU: the most bytes autograd holds for one backward pass (activations; parameters excluded).
    params = {p.untyped_storage().data_ptr() for p in MODEL_PARAMS}
    state = {"now": {}, "top": 0, "backward": False}

    def pack(t):
        if state["backward"]:  # a new forward pass began: the previous graph is gone
            state["now"], state["backward"] = {}, False
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            state["now"][ptr] = t.untyped_storage().nbytes()
            state["top"] = max(state["top"], sum(state["now"].values()))
        return t

    def unpack(t):
        state["backward"] = True
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        fn()
    return 0.0, state["top"]


def timed(fn, repeat: int, device) -> float:
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def captum_ig(ctx, steps: int):
    from captum.attr import IntegratedGradients

    x0 = baseline(ctx, "pad")
    cls = ctx.target.rows.new_tensor([int(c) for c in _classes(ctx)], dtype=torch.long)
    mask = ctx.batch["attention_mask"]

    def forward(embeds):
        return ctx.loaded.model(inputs_embeds=embeds, attention_mask=mask.repeat(embeds.shape[0] // ctx.size, 1)).logits

    def run():
        return IntegratedGradients(forward).attribute(ctx.embeds, baselines=x0, target=cls, n_steps=steps,
                                                      internal_batch_size=CHUNK).sum(-1)

    return run


def _classes(ctx):
    with torch.no_grad():
        return ctx.run(ctx.embeds).logits.argmax(-1).tolist()


def bench(name: str, device: str, repeat: int) -> None:
    loaded = load_model(name, device=device)
    dev = loaded.device
    MODEL_PARAMS[:] = list(loaded.model.parameters())
    texts = TEXTS["minilm" if name == "minilm" else "toy"]
    ctx = prepare(loaded, texts, chunk=CHUNK)
    if loaded.task != "classification":
        raise SystemExit(f"{name} is not a classifier; the captum comparison needs one (try toy-sentiment)")
    ours = lambda: run_method(ctx, "integrated-gradients", steps=50)  # noqa: E731
    theirs = captum_ig(ctx, 50)
    ours(), theirs()  # warm-up
    t_ours, t_theirs = timed(ours, repeat, dev), timed(theirs, repeat, dev)
    _, m_ours = peak(ours, dev)
    _, m_theirs = peak(theirs, dev)
    print(f"[{name} on {dev}] {len(texts)} inputs, 50 steps, {CHUNK} rows per pass")
    print(f"  IG time    attnviz {t_ours * 1e3:8.1f} ms  captum {t_theirs * 1e3:8.1f} ms  ratio {t_ours / t_theirs:.2f} (target <= 1.0)")
    print(f"  IG memory  attnviz {m_ours / 2**20:8.1f} MiB captum {m_theirs / 2**20:8.1f} MiB ratio {m_ours / max(m_theirs, 1):.2f} (target <= 0.6)")
    fixed = run_method(ctx, "integrated-gradients", steps=50)
    auto = run_method(ctx, "integrated-gradients", steps="auto")
    t_fixed = timed(lambda: run_method(ctx, "integrated-gradients", steps=50), repeat, dev)
    t_auto = timed(lambda: run_method(ctx, "integrated-gradients", steps="auto"), repeat, dev)
    print(f"  --steps auto: {auto.extra['steps']} steps, max gap {100 * max(auto.extra['completeness_gap']):.3f}% "
          f"vs 50 steps max gap {100 * max(fixed.extra['completeness_gap']):.3f}%: speed-up {t_fixed / t_auto:.2f}x")
    t_sal = timed(lambda: run_method(ctx, "saliency"), repeat, dev)
    print(f"  IG (50 steps) / saliency cost: {t_fixed / t_sal:.1f}x (target <= 30x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="a classifier (default: toy-sentiment, toy-encoder)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (one keeps ratios stable on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from attnviz.errors import ModelNotFound

    for name in args.model or ["toy-sentiment", "toy-encoder"]:
        try:
            bench(name, args.device, args.repeat)
        except ModelNotFound as err:
            print(f"[{name}] not measured: {err}")


if __name__ == "__main__":
    main()
