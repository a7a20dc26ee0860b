"""How faithful an attribution is: deletion / insertion curves and agreement with ground truth.

Deletion hides text tokens in order of decreasing score and records the target's probability (the
cosine for a sentence encoder); insertion starts from the baseline and reveals them in the same order
(the RISE protocol, Petsiuk et al. 2018, arXiv:1806.07421). A faithful ranking makes the deletion
area small and the insertion area large. On toys with known deciding positions, top-1 says whether
the best-scored text token is one of them, top-k what share of the k best (k = how many decide) are.
"""

from __future__ import annotations

import torch

from attnviz.attribution.context import Context, baseline
from attnviz.attribution.faithfulness.engine import area, removal_values
from attnviz.attribution.faithfulness.engine import ranks as rank_units
from attnviz.attribution.results import Attribution


def ranks(ctx: Context, scores: torch.Tensor) -> torch.Tensor:
    """(B, S) rank of each text token by decreasing score (0 = best); special tokens rank last."""
    return rank_units(scores.to(ctx.embeds.device), exclude=ctx.special)


def curves(ctx: Context, scores: torch.Tensor, baseline_kind: str = "pad") -> tuple[list, list]:
    """Deletion and insertion curves, one list of n+1 values per example (n = its text tokens)."""
    rank = ranks(ctx, scores)  # (B, S)
    counts = (~ctx.special).sum(1)  # (B,) text tokens per example
    x, x0 = ctx.embeds, baseline(ctx, baseline_kind)
    rows = torch.arange(ctx.size, device=x.device).repeat_interleave(counts + 1)  # example e, n_e + 1 times
    steps = torch.cat([torch.arange(int(n) + 1, device=x.device) for n in counts])  # 0..n_e per example
    # Deletion swaps the k best tokens of each row for the baseline; insertion keeps only them.
    deleted = removal_values(rank, rows, steps, lambda r, gone: ctx.variants(r, gone, x0, x, ctx.curve_value)).cpu()
    inserted = removal_values(rank, rows, steps, lambda r, gone: ctx.variants(r, gone, x, x0, ctx.curve_value)).cpu()
    sizes = (counts + 1).tolist()
    return ([d.tolist() for d in deleted.split(sizes)], [i.tolist() for i in inserted.split(sizes)])


def agreement(ctx: Context, scores: torch.Tensor, truth: list[list[int]]) -> tuple[list, list]:
    """Top-1 hit (bool) and top-k share per example against the deciding token positions."""
    rank = ranks(ctx, scores).cpu()
    top1, topk = [], []
    for e, deciding in enumerate(truth):
        if not deciding:
            top1.append(None)
            topk.append(None)
            continue
        best = set(torch.nonzero(rank[e] < len(deciding)).flatten().tolist())
        top1.append(bool(int(rank[e].argmin()) in deciding))
        topk.append(len(best & set(deciding)) / len(deciding))
    return top1, topk


def faithfulness(ctx: Context, attr: Attribution, truth: list[list[int]] | None = None,
                 baseline_kind: str = "pad") -> list[dict]:
    """Per example: deletion/insertion curves and areas, and top-1/top-k agreement when truth is known."""
    dele, ins = curves(ctx, attr.scores, baseline_kind)
    top1, topk = agreement(ctx, attr.scores, truth) if truth is not None else ([None] * ctx.size,) * 2
    return [{"deletion_auc": area(d), "insertion_auc": area(i), "deletion": d, "insertion": i,
             "top1": t1, "topk": tk} for d, i, t1, tk in zip(dele, ins, top1, topk)]


def score_all(ctx: Context, attrs: list[Attribution], truth: list[list[int]] | None = None,
              baseline_kind: str = "pad") -> None:
    """Adds ``extra["faithfulness"]`` to every attribution."""
    for attr in attrs:
        attr.extra["faithfulness"] = faithfulness(ctx, attr, truth, baseline_kind)
