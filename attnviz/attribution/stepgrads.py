"""Input-gradient methods over every step of an answer, from one forward pass per input.

saliency, gradient x input and integrated gradients need only d score / d input embeddings. In a causal
LM the score of answer token t depends on positions 0 .. P + t - 1 alone, so one forward pass over the
prompt and the answer gives every step's score, and one backward call takes the scores of up to
``chunk`` steps at once: their cotangents are batched (``torch.autograd.grad(is_grads_batched=True)``,
a vmap over the backward graph), which shares the forward pass the rows path (``steprows``) ran once per
row. Integrated gradients runs its quadrature nodes as rows of the forward pass; each backward call gives
every node's gradient, summed with the nodes' weights. ``--steps auto`` is decided per example (the rows
path decided it per pass of rows).

A step reads what the rows path reads: one token by its logit, a span by the sum of its tokens'
log-probabilities (``targets.generated``); every example runs alone, unpadded.
"""

from __future__ import annotations

import warnings
from typing import Iterator

import numpy as np
import torch

from attnviz.attribution.context import Context, baseline, embedded, frozen_params, recomputed_layers
from attnviz.attribution.forced import Forced, takes
from attnviz.attribution.methods.integrated import nodes
from attnviz.attribution.methods.options import AUTO_GAP, AUTO_STEPS

SHARED = ("saliency", "grad-x-input", "integrated-gradients")  # methods that read input gradients alone


class _Example:
    """One example's prompt + answer (up to its last explained token) as model input, and its steps' scores."""

    def __init__(self, loaded, forced: Forced, b: int, chunk: int):
        p, a, self.units = forced.prompts[b], forced.answers[b], forced.units[b]
        self.lengths = [len(p) + last for _, last in self.units]  # positions each unit's scores cover
        ids = torch.tensor([(p + a)[: max(self.lengths)]], device=loaded.device)
        mask = torch.ones_like(ids)
        x, special = embedded(loaded, ids)  # (1, L, D), (1, L): no padding
        self.ctx = Context(loaded, {"input_ids": ids, "attention_mask": mask}, [], mask, None, x, special, chunk=chunk)
        first = min(len(p) + f - 1 for f, _ in self.units)  # the first row that predicts an explained token
        self.more = {"logits_to_keep": ids.shape[1] - first} if takes(loaded.model, "logits_to_keep") else {}
        self.first = first if self.more else 0  # logits row 0 is position ``first`` where the model keeps fewer
        single = [(len(p) + f - 1 - self.first, a[f]) for f, last in self.units if f == last]
        self.single = torch.tensor(single, device=ids.device).reshape(-1, 2)  # (U1, 2) row, token
        self.spans = [(u, len(p) + f - 1 - self.first, a[f: last + 1]) for u, (f, last) in enumerate(self.units)
                      if f != last]

    def scores(self, embeds: torch.Tensor) -> torch.Tensor:
        """(n, U) every unit's score for each row of ``embeds`` (n, L, D)."""
        logits = self.ctx.run(embeds, **self.more).logits.float()  # (n, L', V)
        if not self.spans:
            return logits[:, self.single[:, 0], self.single[:, 1]]
        out = logits.new_zeros(logits.shape[0], len(self.units))
        singles = [u for u, (f, last) in enumerate(self.units) if f == last]
        if singles:
            out[:, singles] = logits[:, self.single[:, 0], self.single[:, 1]]
        for u, row, toks in self.spans:
            tok = torch.tensor(toks, device=logits.device)
            lp = logits[:, row: row + len(toks)].log_softmax(-1)  # (n, k, V)
            out[:, u] = lp.gather(-1, tok.expand(lp.shape[0], -1)[..., None])[..., 0].sum(-1)
        return out

    def rows(self, per_unit: torch.Tensor) -> list[np.ndarray]:
        """(U, L) -> each unit's float32 row over the positions it covers."""
        block = per_unit.detach().float().cpu().numpy()
        return [block[u, :n] for u, n in enumerate(self.lengths)]


def _backward(scores: torch.Tensor, x: torch.Tensor, weights: torch.Tensor,
              k: int) -> Iterator[tuple[int, torch.Tensor]]:
    """(first unit, (k', L, D)) for units in runs of ``k``: d score_u / d x summed over x's rows, each row
    weighted by ``weights`` (n,) after the backward pass (a small weight in a half-precision gradient would
    underflow)."""
    n, units = scores.shape
    for start in range(0, units, k):
        kk = min(k, units - start)
        at = torch.arange(kk, device=scores.device)
        cot = scores.new_zeros(kk, n, units)
        cot[at, :, start + at] = 1.0
        with warnings.catch_warnings():  # an op without a batching rule runs in a loop: slower, still exact
            warnings.filterwarnings("ignore", message=".*performance drop.*")
            (grad,) = torch.autograd.grad(scores, x, cot, retain_graph=start + kk < units, is_grads_batched=True)
        yield start, torch.einsum("knld,n->kld", grad, weights.to(grad.dtype))  # (k', n, L, D) -> (k', L, D)


def _gradients(ex: _Example, x: torch.Tensor, weights: torch.Tensor, k: int,
               times: torch.Tensor | None) -> torch.Tensor:
    """(U, L) from one forward pass over the rows of ``x``: per unit, the gradient's norm over the embedding
    (``times`` None) or its product with ``times`` (L, D) summed over it."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = ex.scores(x)  # (n, U)
        out = scores.new_zeros(scores.shape[1], x.shape[1])
        for start, grad in _backward(scores, x, weights, k):
            out[start: start + grad.shape[0]] = grad.float().norm(dim=-1) if times is None else \
                (grad * times).float().sum(-1)
    return out


def shared_scores(loaded, forced: Forced, method: str, options, chunk: int) -> list[list[tuple[np.ndarray, dict]]]:
    """Per example, per unit: (scores over positions 0 .. P + last - 1, facts) as ``steprows.gradient_scores``."""
    out = []
    for b in range(len(forced.prompts)):
        ex = _Example(loaded, forced, b, chunk)
        k = min(len(ex.units), chunk)  # units per backward call
        with frozen_params(loaded.model):
            if method == "integrated-gradients":
                out.append(_integrated(ex, options, k))
                continue
            x, one = ex.ctx.embeds, torch.ones(1, device=ex.ctx.embeds.device)
            per_unit = _gradients(ex, x, one, k, None if method == "saliency" else x[0])
            out.append([(row, {}) for row in ex.rows(per_unit)])
    return out


def _integrated(ex: _Example, options, k: int) -> list[tuple[np.ndarray, dict]]:
    """Integrated gradients of every unit: ``chunk // k`` quadrature nodes per forward pass."""
    x = ex.ctx.embeds
    x0 = baseline(ex.ctx, options.baseline)
    with torch.no_grad():
        ends = ex.scores(torch.cat([x, x0]))  # (2, U)
    delta = (ends[0] - ends[1]).float()  # F(x) - F(x') per unit
    diff = x - x0  # (1, L, D)
    per_node = max(1, ex.ctx.chunk // k)
    for steps in (AUTO_STEPS if options.steps == "auto" else (options.steps,)):
        alphas, weights = (t.to(x.device, x.dtype) for t in nodes(steps, options.rule))
        total = torch.zeros(len(ex.units), x.shape[1], device=x.device)
        with recomputed_layers(ex.ctx.loaded.model):
            for s in range(0, steps, per_node):
                path = x0 + alphas[s: s + per_node, None, None] * diff  # (n, L, D)
                total += _gradients(ex, path, weights[s: s + per_node], k, diff[0])
        lengths = torch.tensor(ex.lengths, device=x.device)
        covered = torch.arange(x.shape[1], device=x.device) < lengths[:, None]  # (U, L)
        gap = ((total * covered).sum(-1) - delta).abs() / delta.abs().clamp(min=1e-12)
        if float(gap.max()) < AUTO_GAP:
            break
    return [(row, {"completeness_gap": g}) for row, g in zip(ex.rows(total), gap.tolist())]
