"""Score functions: how a query and a key become one attention logit (the toys' variants and the standard one).

Each takes (module, query (B, H, Q, D), key (B, H, K, D), scaling) and returns scores (B, H, Q, K).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from attnviz.registry import Registry

# name -> fn(module, query, key, scaling) -> scores (B, H, Q, K)
SCORES: Registry[Callable] = Registry("score function")
PLAIN = frozenset({"scaled-dot", "dot"})  # scores that are one product of the queries and keys


@SCORES.register("scaled-dot")
def scaled_dot(module, query, key, scaling):
    """Vaswani et al. 2017 (arXiv:1706.03762)."""
    # In place: the product is a fresh tensor that autograd does not need, one allocation fewer than eager.
    scores = torch.matmul(query, key.transpose(2, 3))  # (B, H, Q, K)
    return scores if scaling == 1.0 else scores.mul_(scaling)


@SCORES.register("dot")
def dot(module, query, key, scaling):
    """Luong et al. 2015 (arXiv:1508.04025), unscaled: peaks sharpen as head_dim grows."""
    return torch.matmul(query, key.transpose(2, 3))  # (B, H, Q, K)


@SCORES.register("cosine")
def cosine(module, query, key, scaling):
    """Cosine similarity times a temperature (Swin v2, arXiv:2111.09883)."""
    tau = getattr(module, "cosine_scale", 10.0)
    q, k = F.normalize(query, dim=-1), F.normalize(key, dim=-1)
    return torch.matmul(q, k.transpose(2, 3)) * tau  # (B, H, Q, K)


@SCORES.register("additive")
def additive(module, query, key, scaling):
    """Bahdanau et al. 2014 (arXiv:1409.0473): v^T tanh(W_q q + W_k k), per head."""
    q = module.add_q(query).unsqueeze(3)  # (B, H, Q, 1, A)
    k = module.add_k(key).unsqueeze(2)  # (B, H, 1, K, A)
    return module.add_v(torch.tanh(q + k)).squeeze(-1)  # (B, H, Q, K)


def soft_cap(scores: torch.Tensor, cap: float | None) -> torch.Tensor:
    """Gemma 2's logit soft-capping: tanh(s / c) * c, before the mask."""
    return scores if cap is None else torch.tanh(scores / cap) * cap
