"""Attention-based methods: raw attention, rollout, attention flow, gradient rollout, Chefer et al.

Each reads the relevance rows of the target's output positions (``Target.rows``) from one live pass
(``attnviz.attribution.passes``). The token-score functions here serve texts and images alike: a CAM
method lays the same scores, read from the CLS row, on the patch grid. For a sequence-to-sequence
target the rows are decoder positions: their last-layer cross-attention (gradient-weighted for the
gradient methods) is composed with the encoder's relevance matrix.
"""

from __future__ import annotations

import torch

from attnviz.attribution.context import Context, zero_special
from attnviz.attribution.methods import relevance as R
from attnviz.attribution.methods.options import RolloutOptions
from attnviz.attribution.passes import LivePass, live_pass
from attnviz.errors import BadInput

MAX_FLOW_TOKENS = 48  # attention flow solves one max-flow problem per token on an L*S^2-edge graph


def text_pass(ctx: Context, grads: bool) -> LivePass:
    """The live pass of a text batch (weights and gradients in float32), shared by the methods of one run."""
    key = ("live", grads)
    if key not in ctx.cache:
        embeds = ctx.embeds.detach().requires_grad_(grads)

        def forward(eager: bool):
            return ctx.run(embeds, output_attentions=True) if eager else ctx.run(embeds)

        p = live_pass(ctx.loaded, forward, lambda _out: ctx.target, grads=grads)
        p.weights = {s: w.float() for s, w in p.weights.items()}
        p.grads = {s: g.float() for s, g in p.grads.items()}
        ctx.cache[key] = p
    return ctx.cache[key]


def self_stack(p: LivePass) -> str:
    """The self-attention stack whose relevance is composed: the encoder's, else the decoder's."""
    return "encoder" if "encoder" in p.weights else "decoder"


def read_rows(p: LivePass, relevance: torch.Tensor, top: torch.Tensor | None = None) -> torch.Tensor:
    """The target's rows of a (B, S, S) relevance matrix -> token scores (B, S).

    ``top`` (B, T, S) maps decoder rows onto encoder positions first (a cross-attention target);
    a target without rows (a vision Transformer's) reads the first token's (CLS) row.
    """
    if p.target.rows is None:
        return relevance[:, 0]
    rows = p.target.rows.float()
    if p.target.stack == "cross":
        rows = torch.einsum("bt,bts->bs", rows, top)  # decoder positions -> encoder positions
    return torch.einsum("bq,bqk->bk", rows, relevance)


def _cross_last(p: LivePass, gradient: bool) -> torch.Tensor:
    c = p.weights["cross"][-1]  # (B, H, T, S)
    if gradient:
        c = (p.grads["cross"][-1] * c).clamp(min=0)
    return c.mean(dim=1)  # (B, T, S)


def raw_scores(p: LivePass, layer: int = -1) -> torch.Tensor:
    """One layer's head-mean attention from the target's rows: (B, S)."""
    weights = p.weights[self_stack(p)][layer]  # (B, H, S, S)
    if p.target.rows is None:
        return weights[:, :, 0].mean(dim=1)
    return read_rows(p, weights.mean(dim=1))


def rollout_scores(p: LivePass, options: RolloutOptions, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Attention rollout (arXiv:2005.00928) read at the target's rows: (B, S)."""
    rel = R.rollout(p.weights[self_stack(p)], mask, options.fusion, options.discard_ratio)  # (B, S, S)
    top = R.fuse_heads(p.weights["cross"][-1:], options.fusion)[0] if p.target.stack == "cross" else None
    return read_rows(p, rel, top)


def grad_rollout_scores(p: LivePass, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Rollout of each layer's gradient-weighted attention, read at the target's rows: (B, S)."""
    s = self_stack(p)
    top = _cross_last(p, True) if p.target.stack == "cross" else None
    return read_rows(p, R.grad_rollout(p.weights[s], p.grads[s], mask), top)


def chefer_scores(p: LivePass) -> torch.Tensor:
    """Chefer et al. 2021 (arXiv:2103.15679) relevance, read at the target's rows: (B, S)."""
    s = self_stack(p)
    top = _cross_last(p, True) if p.target.stack == "cross" else None
    return read_rows(p, R.chefer(p.weights[s], p.grads[s]), top)


def raw_attention(ctx: Context, options) -> tuple[torch.Tensor, dict]:
    """Head-mean attention of the last layer from the target's position(s): (B, S)."""
    p = text_pass(ctx, grads=False)
    if ctx.target.stack == "cross":
        eye = torch.eye(ctx.embeds.shape[1], device=ctx.embeds.device).expand(ctx.size, -1, -1)
        return zero_special(ctx, read_rows(p, eye, _cross_last(p, False))), {"layer": "last", "stack": "cross"}
    return zero_special(ctx, raw_scores(p)), {"layer": "last"}


def rollout_method(ctx: Context, options: RolloutOptions) -> tuple[torch.Tensor, dict]:
    """Attention rollout with the options' head fusion and discard ratio: (B, S)."""
    scores = rollout_scores(text_pass(ctx, grads=False), options, ctx.mask)
    return zero_special(ctx, scores), {"fusion": options.fusion, "discard_ratio": options.discard_ratio}


def grad_rollout_method(ctx: Context, options) -> tuple[torch.Tensor, dict]:
    """Gradient rollout: (B, S)."""
    return zero_special(ctx, grad_rollout_scores(text_pass(ctx, grads=True), ctx.mask)), {}


def chefer_method(ctx: Context, options) -> tuple[torch.Tensor, dict]:
    """Chefer et al.'s gradient-weighted relevance: (B, S)."""
    return zero_special(ctx, chefer_scores(text_pass(ctx, grads=True))), {}


def flow_method(ctx: Context, options) -> tuple[torch.Tensor, dict]:
    """Attention flow (arXiv:2005.00928) of each example alone, up to MAX_FLOW_TOKENS tokens: (B, S)."""
    if ctx.target.stack == "cross":
        raise BadInput("attention-flow explains encoder or decoder models; for seq2seq use rollout or attn-grad")
    lengths = ctx.mask.long().sum(1).tolist()
    if max(lengths) > MAX_FLOW_TOKENS:
        raise BadInput(f"attention-flow is limited to {MAX_FLOW_TOKENS} tokens (an input has {max(lengths)}); "
                       "use rollout for longer inputs")
    if not bool((ctx.mask[:, :-1] >= ctx.mask[:, 1:]).all()):
        raise BadInput("attention-flow needs right-padded inputs")
    p = text_pass(ctx, grads=False)
    weights = p.weights[self_stack(p)]  # (L, B, H, S, S)
    out = torch.stack([R.attention_flow(weights[:, e].cpu(), ctx.target.rows[e].float().cpu(), n)
                       for e, n in enumerate(lengths)])
    return zero_special(ctx, out.to(ctx.embeds.device)), {"max_tokens": MAX_FLOW_TOKENS}
