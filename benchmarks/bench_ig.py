"""Integrated gradients: attnviz vs captum (time, peak memory), --steps auto vs 50, IG vs saliency.

Every figure is a ratio against a baseline measured in the same run. Peak memory is the most memory
allocated at once during the call: the allocator's peak on CUDA, and on CPU the same quantity counted
op by op (see LiveBytes).

    python benchmarks/bench_ig.py [--model minilm] [--device cpu] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from attnviz.attribution import prepare, run_method
from attnviz.attribution.context import baseline
from attnviz.models import load_model

TEXTS = {
    "minilm": ["The movie was not good, but the music was wonderful.", "A quiet street after the rain.",
               "Stocks fell sharply on Monday as investors worried about rates.", "我喜欢这部电影"],
    "toy": ["the movie was not good", "这部电影很好", "really a lovely day and the food", "不开心"],
}
# Four texts of one length: no padding to drop, so only recomputation is left to pay for.
SAME_LENGTH = ["the movie was not good", "the movie was very bad", "a lovely day in the sun", "i do not like the food"]
CHUNK = 32  # rows per forward pass, for both implementations


class LiveBytes(TorchDispatchMode):
    """The most bytes of tensor storage alive at once among those the ops of a call allocate.

    The CPU counterpart of CUDA's peak allocation: every storage an op returns counts from its creation
    until it is freed, so activations, recomputed ones, gradients and temporaries all count; tensors that
    existed before the call (the parameters, the inputs) do not.
    """

    def __init__(self):
        super().__init__()
        self.live: dict[int, int] = {}
        self.now = self.top = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in self.live:
                storage = t.untyped_storage()
                if storage.nbytes():
                    self.live[storage.data_ptr()] = storage.nbytes()
                    self.now += storage.nbytes()
                    self.top = max(self.top, self.now)
                    weakref.finalize(storage, self._freed, storage.data_ptr())
        return out

    def _freed(self, ptr: int) -> None:
        self.now -= self.live.pop(ptr, 0)


def peak(fn, device) -> int:
    """Peak bytes allocated during one call, above what was allocated before it."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - start
    with LiveBytes() as mode:
        fn()
    return mode.top


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
    texts = TEXTS["minilm" if name == "minilm" else "toy"]
    ctx = prepare(loaded, texts, chunk=CHUNK)
    if loaded.task != "classification":
        raise SystemExit(f"{name} is not a classifier; the captum comparison needs one (try toy-sentiment)")
    ours = lambda: run_method(ctx, "integrated-gradients", steps=50)  # noqa: E731
    theirs = captum_ig(ctx, 50)
    ours(), theirs()  # warm-up
    t_ours, t_theirs = timed(ours, repeat, dev), timed(theirs, repeat, dev)
    m_ours, m_theirs = peak(ours, dev), peak(theirs, dev)
    print(f"[{name} on {dev}] {len(texts)} inputs, 50 steps, {CHUNK} rows per pass")
    print(f"  IG time    attnviz {t_ours * 1e3:8.1f} ms  captum {t_theirs * 1e3:8.1f} ms  ratio {t_ours / t_theirs:.2f} (target <= 1.0)")
    same = prepare(loaded, SAME_LENGTH, chunk=CHUNK)
    t_same, t_same_captum = timed(lambda: run_method(same, "integrated-gradients", steps=50), repeat, dev), \
        timed(captum_ig(same, 50), repeat, dev)
    print(f"  IG time, texts of one length: ratio {t_same / t_same_captum:.2f}")
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
