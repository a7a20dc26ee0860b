"""Plain gradient methods: saliency (Simonyan et al. 2013, arXiv:1312.6034) and gradient x input."""

from __future__ import annotations

from attnviz.attribution.base import METHODS, Context, frozen_params, input_grad, zero_special


@METHODS.register("saliency")
def saliency(ctx: Context, **_) -> tuple:
    """The gradient's L2 norm over the embedding dimension: how sensitive the target is to each token."""
    with frozen_params(ctx.loaded.model):
        grad = input_grad(ctx, ctx.embeds)  # (B, S, D)
    return zero_special(ctx, grad.float().norm(dim=-1)), {}


@METHODS.register("grad-x-input")
def grad_x_input(ctx: Context, **_) -> tuple:
    """Gradient times input summed over the embedding (Shrikumar et al. 2016, arXiv:1605.01713): signed."""
    with frozen_params(ctx.loaded.model):
        grad = input_grad(ctx, ctx.embeds)  # (B, S, D)
    return zero_special(ctx, (grad * ctx.embeds).float().sum(-1)), {}
