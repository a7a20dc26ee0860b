"""Integrated gradients (Sundararajan et al. 2017, arXiv:1703.01365) with a running sum over chunks.

Steps are processed ``ctx.chunk`` rows at a time and only the weighted sum of their gradients is kept,
so memory does not grow with the number of steps. The completeness gap |sum(attr) - (F(x) - F(x'))|
is reported relative to |F(x) - F(x')|.
"""

from __future__ import annotations

import numpy as np
import torch

from attnviz.attribution.context import Context, baseline, frozen_params, input_grad, recomputed_layers, zero_special
from attnviz.attribution.methods.options import AUTO_GAP, AUTO_STEPS, RULES, IntegratedOptions
from attnviz.errors import BadInput


def nodes(steps: int, rule: str = "gausslegendre") -> tuple[torch.Tensor, torch.Tensor]:
    """(alphas, weights) of a quadrature rule on [0, 1], as captum defines them."""
    if rule == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(steps)
        return torch.tensor(0.5 * (x + 1)), torch.tensor(0.5 * w)
    if rule == "riemann_trapezoid":
        if steps < 2:
            raise BadInput("riemann_trapezoid needs at least 2 steps")
        w = torch.full((steps,), 1.0 / (steps - 1), dtype=torch.float64)
        w[0] = w[-1] = 0.5 / (steps - 1)
        return torch.linspace(0, 1, steps, dtype=torch.float64), w
    if rule == "riemann_middle":
        return torch.linspace(0.5 / steps, 1 - 0.5 / steps, steps, dtype=torch.float64), torch.full((steps,), 1.0 / steps)
    raise BadInput(f"unknown integration rule {rule!r}; choose {', '.join(RULES)}")


def path_gradients(ctx: Context, x: torch.Tensor, x0: torch.Tensor, steps: int, rule: str) -> torch.Tensor:
    """The quadrature-weighted sum of gradients along the straight path x0 -> x: (B, S, D).

    The (example, step) rows run ``ctx.chunk`` at a time, shortest examples first, and each pass drops
    the positions that are padding in all of its rows.
    """
    alphas, weights = nodes(steps, rule)
    alphas, weights = alphas.to(x.device, x.dtype), weights.to(x.device, x.dtype)
    diff = x - x0  # (B, S, D)
    total = torch.zeros_like(x)
    lengths = ctx.lengths()  # (B,)
    order = lengths.argsort(stable=True)
    examples = order.repeat_interleave(steps)  # (B * steps,) example of each row
    at = torch.arange(steps, device=x.device).repeat(len(order))  # (B * steps,) step of each row
    with frozen_params(ctx.loaded.model), recomputed_layers(ctx.loaded.model):
        for start in range(0, len(examples), ctx.chunk):
            rows, k = examples[start:start + ctx.chunk], at[start:start + ctx.chunk]
            n = int(lengths[rows].max())
            path = x0[rows, :n] + alphas[k, None, None] * diff[rows, :n]  # (c, n, D)
            grad = input_grad(ctx, path, rows)  # (c, n, D)
            total[:, :n].index_add_(0, rows, weights[k, None, None] * grad)
            del grad, path
    return total


def _endpoints(ctx: Context, x0: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return (ctx.score(ctx.embeds) - ctx.score(x0)).float()  # (B,) F(x) - F(x')


def _run(ctx: Context, x0: torch.Tensor, steps: int, rule: str, delta: torch.Tensor):
    grads = path_gradients(ctx, ctx.embeds, x0, steps, rule)
    scores = zero_special(ctx, ((ctx.embeds - x0) * grads).float().sum(-1))  # (B, S)
    gap = (scores.sum(-1) - delta).abs() / delta.abs().clamp(min=1e-12)
    return scores, gap


def integrated_gradients(ctx: Context, options: IntegratedOptions) -> tuple[torch.Tensor, dict]:
    """Scores (B, S): (x - x') . the path integral of the gradient; extra: steps run, completeness gaps."""
    x0 = baseline(ctx, options.baseline)
    delta = _endpoints(ctx, x0)
    for n in (AUTO_STEPS if options.steps == "auto" else (options.steps,)):
        scores, gap = _run(ctx, x0, n, options.rule, delta)
        if float(gap.max()) < AUTO_GAP:
            break
    extra = {"steps": n, "rule": options.rule, "baseline": options.baseline, "completeness_gap": gap.tolist(),
             "score_difference": delta.tolist()}
    return scores, extra
