"""Occlusion and deletion/insertion curves on a padded batch of texts of different lengths.

attnviz runs one row per (window or step, text) that changes something, in passes cut to their longest
text. The baseline, in the same process on the same inputs, runs what attnviz ran before: every window
and step for every text of the batch at its padded width. Both give the same scores. Each timed call
gets a new context (nothing cached from an earlier call); the speed-up is the median of per-pair ratios.

    python3 benchmarks/bench_attribute.py [--model minilm] [--device cpu] [--repeat 5]
"""

from __future__ import annotations

import argparse

from common import Ratio, interleaved, median_ms

import torch

from attnviz.attribution import prepare, run_method
from attnviz.attribution.context import baseline
from attnviz.attribution.faithfulness import curves, ranks
from attnviz.models import load_model

TEXTS = ["Fine.", "Not good at all.", "我喜欢这部电影", "A quiet street after the rain, and nobody about.",
         "The movie was long, slow and far too loud, but the music and the last twenty minutes were wonderful.",
         "Stocks fell sharply on Monday as investors worried that rates would stay high for the rest of the year, "
         "while oil prices rose for a third day and the dollar held steady against most currencies."]

REFERENCE = "I enjoyed the film."


def _run(ctx) -> tuple[torch.Tensor, list]:
    scores = run_method(ctx, "occlusion").scores
    dele, _ = curves(ctx, scores)
    return scores, dele


def _grid(ctx) -> tuple[torch.Tensor, list]:
    """The baseline: every window / step for every text, at the padded width."""
    x, x0 = ctx.embeds, baseline(ctx, "pad")
    b, s, _ = x.shape
    dev = x.device
    pos = torch.arange(s, device=dev)
    hide = ((pos[None] == pos[:, None])[:, None] & ~ctx.special[None]).flatten(0, 1)  # (S * B, S), window 1
    rows = torch.arange(b, device=dev).repeat(s)
    with torch.no_grad():
        full = ctx.score(x).float()
        fall = full[rows] - ctx.variants(rows, hide, x0, x, ctx.score)
    drop = torch.zeros(b, s, device=dev).index_add_(0, rows, fall[:, None] * hide)
    scores = drop / torch.zeros(b, s, device=dev).index_add_(0, rows, hide.float()).clamp(min=1)
    rank = ranks(ctx, scores)
    counts = (~ctx.special).sum(1)
    steps = torch.arange(int(counts.max()) + 1, device=dev).repeat_interleave(b)
    rows = torch.arange(b, device=dev).repeat(int(counts.max()) + 1)
    gone = rank[rows] < steps[:, None]
    dele = ctx.variants(rows, gone, x0, x, ctx.curve_value).view(-1, b).T
    ctx.variants(rows, gone, x, x0, ctx.curve_value)  # insertion
    return scores.cpu(), [d[: int(n) + 1].tolist() for d, n in zip(dele.cpu(), counts)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved pairs")
    args = parser.parse_args()
    torch.manual_seed(0)
    loaded = load_model(args.model, device=args.device)
    reference = REFERENCE if loaded.task == "embedding" else None  # a sentence encoder explains a similarity
    fresh = lambda: prepare(loaded, TEXTS, reference=reference)  # noqa: E731  nothing cached from a run before
    cases = {"full width": lambda ctx: _grid(_uncut(ctx)), "attnviz": _run}
    for fn in cases.values():
        fn(fresh())  # warm-up
    times, out = interleaved(cases, args.repeat, device=loaded.device, setup=fresh)
    (s_cut, d_cut), (s_full, d_full) = out["attnviz"], out["full width"]
    gap = max(float((s_cut - s_full).abs().max()),
              max(abs(a - b) for x, y in zip(d_cut, d_full) for a, b in zip(x, y)))
    ctx = fresh()
    lengths = ctx.lengths().tolist()
    print(f"[{loaded.name} on {args.device}] {len(TEXTS)} texts of {min(lengths)}..{max(lengths)} tokens, "
          f"padded to {ctx.mask.shape[1]}; occlusion + deletion/insertion curves, {args.repeat} interleaved pairs")
    print(f"  attnviz {median_ms(times['attnviz'])}   every window and step at full width {median_ms(times['full width'])}   "
          f"speed-up {Ratio.of(times['full width'], times['attnviz'])}   largest difference {gap:.1e}")


def _uncut(ctx):
    """The context as attnviz ran it before: every text at the padded width."""
    width = ctx.mask.shape[1]
    ctx.lengths = lambda: torch.full((ctx.size,), width, device=ctx.mask.device)
    return ctx

if __name__ == "__main__":
    main()
