"""Plain gradient methods: saliency (Simonyan et al. 2013, arXiv:1312.6034) and gradient x input."""

from __future__ import annotations

import torch

from attnviz.attribution.context import Context, frozen_params, input_grad, zero_special


def embeds_grad(ctx: Context) -> torch.Tensor:
    """d score / d input embeddings (B, S, D), computed once per run for both methods below."""
    if "embeds_grad" not in ctx.cache:
        with frozen_params(ctx.loaded.model):
            ctx.cache["embeds_grad"] = input_grad(ctx, ctx.embeds)
    return ctx.cache["embeds_grad"]


def saliency(ctx: Context, options) -> tuple[torch.Tensor, dict]:
    """The gradient's L2 norm over the embedding dimension: how sensitive the target is to each token (B, S)."""
    return zero_special(ctx, embeds_grad(ctx).float().norm(dim=-1)), {}


def grad_x_input(ctx: Context, options) -> tuple[torch.Tensor, dict]:
    """Gradient times input summed over the embedding (Shrikumar et al. 2016, arXiv:1605.01713): signed (B, S)."""
    return zero_special(ctx, (embeds_grad(ctx) * ctx.embeds).float().sum(-1)), {}
