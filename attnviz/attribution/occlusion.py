"""Occlusion (Zeiler & Fergus 2013, arXiv:1311.2901): how much the target drops when tokens are hidden.

A window of ``window`` tokens slides one token at a time; each token's score is the mean drop of the
windows that cover it (a window of 1 leaves one token out). Hidden tokens take the baseline embedding.
"""

from __future__ import annotations

import torch

from attnviz.attribution.base import METHODS, Context, baseline, zero_special
from attnviz.errors import BadInput


@METHODS.register("occlusion")
def occlusion(ctx: Context, window: int = 1, baseline_kind: str = "pad", **_) -> tuple:
    if not isinstance(window, int) or window < 1:
        raise BadInput(f"--window must be a whole number >= 1, not {window!r}")
    x, x0 = ctx.embeds, baseline(ctx, baseline_kind)
    b, s, _ = x.shape
    text = ~ctx.special  # (B, S) tokens that may be hidden
    # A window that hides no token of any example changes nothing: it is skipped, not run.
    starts = [st for st in range(s) if bool(text[:, st:st + window].any())]
    drop = torch.zeros(b, s, device=x.device)
    cover = torch.zeros(b, s, device=x.device)
    with torch.no_grad():
        full = ctx.score(x).float()  # (B,)
        per = max(1, ctx.chunk // b)
        for i in range(0, len(starts), per):
            group = starts[i:i + per]
            hide = torch.zeros(len(group), b, s, dtype=torch.bool, device=x.device)
            for k, st in enumerate(group):
                hide[k, :, st:st + window] = True
            hide &= ~ctx.special[None]  # (k, B, S): only text tokens are hidden
            variants = torch.where(hide[..., None], x0[None], x[None]).flatten(0, 1)  # (k*B, S, D)
            fall = full[None] - ctx.score(variants).float().view(len(group), b)  # (k, B)
            drop += (fall[..., None] * hide).sum(0)
            cover += hide.sum(0)
    scores = drop / cover.clamp(min=1)
    return zero_special(ctx, scores), {"window": window, "baseline": baseline_kind}
