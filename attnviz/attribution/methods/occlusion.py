"""Occlusion (Zeiler & Fergus 2013, arXiv:1311.2901): how much the target drops when tokens are hidden.

A window of ``window`` tokens slides one token at a time; each token's score is the mean drop of the
windows that cover it (a window of 1 leaves one token out). Hidden tokens take the baseline embedding.
"""

from __future__ import annotations

import torch

from attnviz.attribution.context import Context, baseline, zero_special
from attnviz.attribution.methods.options import OcclusionOptions


def occlusion(ctx: Context, options: OcclusionOptions) -> tuple[torch.Tensor, dict]:
    """Scores (B, S): the mean drop of the target's score over the windows that hide each token."""
    window = options.window
    x, x0 = ctx.embeds, baseline(ctx, options.baseline)
    b, s, _ = x.shape
    pos = torch.arange(s, device=x.device)
    windows = (pos[None] >= pos[:, None]) & (pos[None] < pos[:, None] + window)  # (starts, S)
    hide = windows[:, None] & ~ctx.special[None]  # (starts, B, S): only text tokens are hidden
    # Only (window, example) pairs that hide something run: nothing else can change the score.
    at, rows = hide.any(-1).nonzero(as_tuple=True)  # (n,) window start and example of each variant
    swap = hide[at, rows]  # (n, S)
    with torch.no_grad():
        full = ctx.score(x).float()  # (B,)
    fall = full[rows] - ctx.variants(rows, swap, x0, x, ctx.score)  # (n,)
    drop = torch.zeros(b, s, device=x.device).index_add_(0, rows, fall[:, None] * swap)
    cover = torch.zeros(b, s, device=x.device).index_add_(0, rows, swap.float())
    scores = drop / cover.clamp(min=1)
    return zero_special(ctx, scores), {"window": window, "baseline": options.baseline}
