"""Plain gradient methods: saliency (Simonyan et al. 2013, arXiv:1312.6034) and gradient x input."""

from __future__ import annotations

import torch

from attnviz.attribution.base import METHODS, Context, frozen_params, input_grad, zero_special


def embeds_grad(ctx: Context) -> torch.Tensor:
    """d score / d input embeddings (B, S, D), computed once per run for both methods below."""
    if "embeds_grad" not in ctx.cache:
        with frozen_params(ctx.loaded.model):
            ctx.cache["embeds_grad"] = input_grad(ctx, ctx.embeds)
    return ctx.cache["embeds_grad"]


@METHODS.register("saliency")
def saliency(ctx: Context, **_) -> tuple:
    """The gradient's L2 norm over the embedding dimension: how sensitive the target is to each token."""
    return zero_special(ctx, embeds_grad(ctx).float().norm(dim=-1)), {}


@METHODS.register("grad-x-input")
def grad_x_input(ctx: Context, **_) -> tuple:
    """Gradient times input summed over the embedding (Shrikumar et al. 2016, arXiv:1605.01713): signed."""
    return zero_special(ctx, (embeds_grad(ctx) * ctx.embeds).float().sum(-1)), {}
