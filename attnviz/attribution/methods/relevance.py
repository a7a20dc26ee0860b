"""Attention-based relevance as pure tensor functions: rollout, gradient rollout, Chefer et al.

Every function takes a stack of attention weights (L, B, H, S, S) in forward layer order and returns
a relevance matrix (B, S, S) whose row i says how much output position i draws from each input
position. Vision CAMs and the text attribution methods both read rows of it.
"""

from __future__ import annotations

import torch

from attnviz.attribution.methods.options import FUSIONS


def fuse_heads(weights: torch.Tensor, fusion: str = "mean") -> torch.Tensor:
    """(L, B, H, S, S) -> (L, B, S, S)."""
    if fusion == "mean":
        return weights.mean(dim=2)
    if fusion == "max":
        return weights.amax(dim=2)
    if fusion == "min":
        return weights.amin(dim=2)
    raise ValueError(f"unknown head fusion {fusion!r}; choose {', '.join(FUSIONS)}")


def _discard(fused: torch.Tensor, ratio: float) -> torch.Tensor:
    """Zero the lowest ``ratio`` of each (S, S) matrix, never the diagonal or attention to position 0."""
    if ratio <= 0.0:
        return fused
    l, b, s, _ = fused.shape
    keep = torch.eye(s, dtype=torch.bool, device=fused.device)
    keep[:, 0] = True  # attention to CLS / the first token carries the residual of many heads
    flat = fused.masked_fill(keep, float("inf")).reshape(l, b, s * s)  # (L, B, S*S)
    n_drop = int(ratio * (s * s - int(keep.sum())))
    if n_drop == 0:
        return fused
    lowest = flat.topk(n_drop, dim=-1, largest=False).indices  # (L, B, n_drop)
    out = fused.reshape(l, b, s * s).scatter(-1, lowest, 0.0)
    return out.reshape(l, b, s, s)  # (L, B, S, S)


def _apply_mask(fused: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Padding keys get no weight; padding rows become pure residual (identity after the next step)."""
    if mask is None:
        return fused
    keep = mask.to(fused.device, fused.dtype)  # (B, S)
    fused = fused * keep[None, :, None, :] * keep[None, :, :, None]  # (L, B, S, S)
    return fused


def _compose(fused: torch.Tensor) -> torch.Tensor:
    """Residual identity, row normalisation, product over layers in forward order (arXiv:2005.00928)."""
    s = fused.shape[-1]
    eye = torch.eye(s, dtype=fused.dtype, device=fused.device)
    result = None
    for layer in fused:  # (B, S, S), layer 0 first
        a = layer + eye
        a = a / a.sum(dim=-1, keepdim=True)  # rows sum to 1; keepdim keeps the division row-wise
        result = a if result is None else a @ result  # later layers read what earlier ones gathered
    return result  # (B, S, S)


def rollout(weights: torch.Tensor, mask: torch.Tensor | None = None, fusion: str = "mean",
            discard_ratio: float = 0.0) -> torch.Tensor:
    """Attention rollout of Abnar & Zuidema 2020 (arXiv:2005.00928): (L, B, H, S, S) -> (B, S, S)."""
    fused = fuse_heads(weights.float(), fusion)  # (L, B, S, S)
    fused = _discard(_apply_mask(fused, mask), discard_ratio)
    return _compose(fused)


def grad_rollout(weights: torch.Tensor, grads: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gradient-weighted rollout: each layer's attention times that same layer's gradient.

    The positive part of grad * attention keeps what raises the target (as in arXiv:2103.15679),
    averaged over heads, then composed like rollout.
    """
    fused = (grads.float() * weights.float()).clamp(min=0).mean(dim=2)  # (L, B, S, S)
    return _compose(_apply_mask(fused, mask))


def chefer(weights: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Chefer et al. 2021, "Generic Attention-model Explainability" (arXiv:2103.15679), self-attention rule.

    R = I; for each layer in forward order: R = R + mean_h((grad * A)^+) @ R.
    """
    _, b, _, s, _ = weights.shape
    r = torch.eye(s, dtype=torch.float32, device=weights.device).expand(b, s, s).clone()  # (B, S, S)
    for a, g in zip(weights.float(), grads.float()):  # (B, H, S, S) each, layer 0 first
        a_bar = (g * a).clamp(min=0).mean(dim=1)  # (B, S, S)
        r = r + a_bar @ r
    return r


def attention_flow(weights: torch.Tensor, source: torch.Tensor, n_real: int) -> torch.Tensor:
    """Attention flow of Abnar & Zuidema 2020 (arXiv:2005.00928) for one example.

    weights: (L, H, S, S) of one example cut to its ``n_real`` real positions; source: (S,) how much
    each top-layer position contributes (one-hot for a single target row). Returns (S,): the maximum
    flow from the top layer to each input position through the residual-augmented attention graph.
    """
    import networkx as nx

    fused = fuse_heads(weights.float()[:, None], "mean")[:, 0, :n_real, :n_real]  # (L, S, S)
    eye = torch.eye(n_real)
    layers = [(a + eye) / (a + eye).sum(-1, keepdim=True) for a in fused]
    g = nx.DiGraph()
    top = len(layers)
    for i, w in enumerate(source[:n_real].tolist()):
        if w > 0:
            g.add_edge("src", (top, i), capacity=w)
    for l, a in enumerate(layers):  # node (l + 1, i) reads from (l, j)
        rows, cols = torch.nonzero(a > 0, as_tuple=True)
        for i, j in zip(rows.tolist(), cols.tolist()):
            g.add_edge((l + 1, i), (l, j), capacity=float(a[i, j]))
    out = torch.zeros(weights.shape[-1])
    for j in range(n_real):
        if (0, j) in g and "src" in g:
            out[j] = nx.maximum_flow_value(g, "src", (0, j))
    return out
