"""Attention-based methods: raw attention, rollout, attention flow, gradient rollout, Chefer et al.

Each reads the relevance rows of the target's output positions (``Target.rows``). For a
sequence-to-sequence target the rows are decoder positions: their last-layer cross-attention
(gradient-weighted for the gradient methods) is composed with the encoder's relevance matrix.
"""

from __future__ import annotations

import torch

from attnviz.attribution import attention as A
from attnviz.attribution.base import METHODS, Context, frozen_params, zero_special
from attnviz.recording import STACKS, recording
from attnviz.errors import AttnvizError, BadInput

MAX_FLOW_TOKENS = 48  # attention flow solves one max-flow problem per token on an L*S^2-edge graph


def stacks(ctx: Context, grads: bool) -> tuple[dict, dict]:
    """Live attention of every stack (L, B, H, Q, K) and, if asked, the target's gradient for each."""
    key = ("stacks", grads)
    if key in ctx.cache:
        return ctx.cache[key]
    model = ctx.loaded.model
    embeds = ctx.embeds.detach().requires_grad_(grads)
    with frozen_params(model), torch.set_grad_enabled(grads):
        if ctx.loaded.backend == "attnviz":
            with recording(model, keep_graph=True) as rec:
                out = ctx.run(embeds)
            live = {s: rec.per_layer(s) for s in STACKS}
        else:
            out = ctx.run(embeds, output_attentions=True)
            live = _eager(out)
            if len(live["encoder"]) != ctx.loaded.num_layers:  # SDPA hands back () rather than failing
                raise AttnvizError(f"eager attention returned {len(live['encoder'])} layers; "
                                   f"{ctx.loaded.name} has {ctx.loaded.num_layers}")
        # Gradients are taken with respect to the per-layer tensors the forward pass used, never a stacked copy.
        live = {s: layers for s, layers in live.items() if layers}
        if not live:
            raise AttnvizError(f"no attention was captured from {ctx.loaded.name}")
        gradients = {}
        if grads:
            score = ctx.target.score(out, ctx.examples(ctx.size)).sum()
            # Decoder self-attention of a seq2seq model does not depend on the source: it gets zeros.
            flat = [w for s in live for w in live[s] if w.requires_grad]
            got = dict(zip(map(id, flat), torch.autograd.grad(score, flat, allow_unused=True)))
            for s in live:
                per = [got.get(id(w)) for w in live[s]]
                gradients[s] = torch.stack([torch.zeros_like(w) if g is None else g for w, g in zip(live[s], per)])
    found = {s: torch.stack([w.detach() for w in layers]).float() for s, layers in live.items()}  # (L, B, H, Q, K)
    result = (found, {n: g.float() for n, g in gradients.items()})
    ctx.cache[key] = result
    return result


def _eager(out) -> dict:
    enc = getattr(out, "encoder_attentions", None) or getattr(out, "attentions", None)
    return {"encoder": list(enc or ()), "decoder": list(getattr(out, "decoder_attentions", None) or ()),
            "cross": list(getattr(out, "cross_attentions", None) or ())}


def _self(ctx: Context, found: dict) -> str:
    return "encoder" if "encoder" in found else "decoder"


def _read(ctx: Context, relevance: torch.Tensor, found: dict, top: torch.Tensor | None = None) -> torch.Tensor:
    """Target rows of a (B, S, S) relevance matrix -> (B, S); ``top`` (B, T, S) maps decoder rows first."""
    rows = ctx.target.rows.float()
    if ctx.target.stack == "cross":
        rows = torch.einsum("bt,bts->bs", rows, top)  # decoder positions -> encoder positions
    return zero_special(ctx, torch.einsum("bq,bqk->bk", rows, relevance))


def _cross_last(found: dict, grads: dict | None) -> torch.Tensor:
    c = found["cross"][-1]  # (B, H, T, S)
    if grads is not None:
        c = (grads["cross"][-1] * c).clamp(min=0)
    return c.mean(dim=1)  # (B, T, S)


@METHODS.register("attention")
def raw_attention(ctx: Context, **_) -> tuple:
    """Head-mean attention of the last layer from the target's position(s)."""
    found, _ = stacks(ctx, grads=False)
    if ctx.target.stack == "cross":
        eye = torch.eye(ctx.embeds.shape[1], device=ctx.embeds.device).expand(ctx.size, -1, -1)
        return _read(ctx, eye, found, _cross_last(found, None)), {"layer": "last", "stack": "cross"}
    last = found[_self(ctx, found)][-1].mean(dim=1)  # (B, S, S)
    return _read(ctx, last, found), {"layer": "last"}


@METHODS.register("rollout")
def rollout_method(ctx: Context, fusion: str = "mean", discard_ratio: float = 0.0, **_) -> tuple:
    if fusion not in A.FUSIONS:
        raise BadInput(f"unknown head fusion {fusion!r}; choose {', '.join(A.FUSIONS)}")
    if not 0.0 <= discard_ratio < 1.0:
        raise BadInput(f"--discard-ratio must be in [0, 1), not {discard_ratio}")
    found, _ = stacks(ctx, grads=False)
    rel = A.rollout(found[_self(ctx, found)], ctx.mask, fusion, discard_ratio)
    top = A.fuse_heads(found["cross"][-1:], fusion)[0] if ctx.target.stack == "cross" else None
    return _read(ctx, rel, found, top), {"fusion": fusion, "discard_ratio": discard_ratio}


@METHODS.register("grad-rollout")
def grad_rollout_method(ctx: Context, **_) -> tuple:
    found, grads = stacks(ctx, grads=True)
    s = _self(ctx, found)
    rel = A.grad_rollout(found[s], grads[s], ctx.mask)
    top = _cross_last(found, grads) if ctx.target.stack == "cross" else None
    return _read(ctx, rel, found, top), {}


@METHODS.register("attn-grad")
def chefer_method(ctx: Context, **_) -> tuple:
    found, grads = stacks(ctx, grads=True)
    s = _self(ctx, found)
    rel = A.chefer(found[s], grads[s])
    top = _cross_last(found, grads) if ctx.target.stack == "cross" else None
    return _read(ctx, rel, found, top), {}


@METHODS.register("attention-flow")
def flow_method(ctx: Context, **_) -> tuple:
    found, _ = stacks(ctx, grads=False)
    if ctx.target.stack == "cross":
        raise BadInput("attention-flow explains encoder or decoder models; for seq2seq use rollout or attn-grad")
    weights = found[_self(ctx, found)]  # (L, B, H, S, S)
    lengths = ctx.mask.long().sum(1).tolist()
    if max(lengths) > MAX_FLOW_TOKENS:
        raise BadInput(f"attention-flow is limited to {MAX_FLOW_TOKENS} tokens (an input has {max(lengths)}); "
                       "use rollout for longer inputs")
    if not bool((ctx.mask[:, :-1] >= ctx.mask[:, 1:]).all()):
        raise BadInput("attention-flow needs right-padded inputs")
    out = torch.stack([A.attention_flow(weights[:, e].cpu(), ctx.target.rows[e].float().cpu(), n)
                       for e, n in enumerate(lengths)])
    return zero_special(ctx, out.to(ctx.embeds.device)), {"max_tokens": MAX_FLOW_TOKENS}
