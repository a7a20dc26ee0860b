"""Integrated gradients: attnviz vs captum (time, peak memory), --steps auto vs 50, IG vs saliency.

Every figure is a ratio against a baseline measured in the same run. Peak memory is the most memory
allocated at once during the call: the allocator's peak on CUDA, and on CPU the same quantity counted
op by op (see LiveBytes). Every timed call of attnviz gets a new context, so that none is served from
what an earlier call (or another method) left in the context's cache. Times come from interleaved runs;
each ratio is the median of per-round ratios, with their range (benchmarks/common.py).

    python3 benchmarks/bench_ig.py [--model minilm] [--device cpu] [--repeat 5]
"""

from __future__ import annotations

import argparse
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from common import Ratio, interleaved, median_ms

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
    if loaded.task != "classification":
        raise SystemExit(f"{name} is not a classifier; the captum comparison needs one (try toy-sentiment)")
    texts = TEXTS["minilm" if name == "minilm" else "toy"]
    fresh = lambda: prepare(loaded, texts, chunk=CHUNK)  # noqa: E731  a new context: nothing cached
    ig = lambda steps: lambda ctx: run_method(ctx, "integrated-gradients", steps=steps)  # noqa: E731
    theirs = captum_ig(fresh(), 50)  # captum keeps nothing between calls
    cases = {"captum": lambda _: theirs(), "attnviz": ig(50)}
    for fn in cases.values():
        fn(fresh())  # warm-up
    times, _ = interleaved(cases, repeat, device=dev, setup=fresh)
    m_ours, m_theirs = peak(lambda: ig(50)(fresh()), dev), peak(theirs, dev)
    print(f"[{name} on {dev}] {len(texts)} inputs, 50 steps, {CHUNK} rows per pass, {repeat} interleaved pairs")
    print(f"  IG time    attnviz {median_ms(times['attnviz'])}  captum {median_ms(times['captum'])}  "
          f"attnviz / captum {Ratio.of(times['attnviz'], times['captum'])} (target <= 1.0)")
    same = lambda: prepare(loaded, SAME_LENGTH, chunk=CHUNK)  # noqa: E731
    theirs_same = captum_ig(same(), 50)
    t_same, _ = interleaved({"captum": lambda _: theirs_same(), "attnviz": ig(50)}, repeat, device=dev, setup=same)
    print(f"  IG time, texts of one length: attnviz / captum {Ratio.of(t_same['attnviz'], t_same['captum'])}")
    print(f"  IG memory  attnviz {m_ours / 2**20:8.1f} MiB captum {m_theirs / 2**20:8.1f} MiB ratio {m_ours / max(m_theirs, 1):.2f} (target <= 0.6)")
    t_steps, out = interleaved({"50": ig(50), "auto": ig("auto"), "saliency": lambda c: run_method(c, "saliency")},
                               repeat, device=dev, setup=fresh)
    fixed, auto = out["50"], out["auto"]
    print(f"  --steps auto: {auto.extra['steps']} steps, max gap {100 * max(auto.extra['completeness_gap']):.3f}% "
          f"vs 50 steps max gap {100 * max(fixed.extra['completeness_gap']):.3f}%: "
          f"speed-up (50 / auto) {Ratio.of(t_steps['50'], t_steps['auto'])}")
    print(f"  IG (50 steps) / saliency cost: {Ratio.of(t_steps['50'], t_steps['saliency'])} (target <= 30)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="a classifier (default: toy-sentiment, toy-encoder)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved pairs")
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
