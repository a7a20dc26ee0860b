"""Mask patterns (which keys a query may see) and the arithmetic that applies a mask to scores."""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch

from attnviz.registry import Registry

# name -> fn(q_len, k_len, device, **options) -> bool (Q, K), True where attention is allowed
MASKS: Registry[Callable] = Registry("mask pattern")


@MASKS.register("global")
def global_mask(q_len, k_len, device, **_):
    return torch.ones(q_len, k_len, dtype=torch.bool, device=device)


@MASKS.register("causal")
def causal_mask(q_len, k_len, device, **_):
    # Queries are the last q_len of k_len positions (works with a cache too).
    return torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(k_len - q_len)


@MASKS.register("local")
def local_mask(q_len, k_len, device, window=3, **_):
    """A band of half-width ``window`` (Longformer's sliding window, arXiv:2004.05150)."""
    q = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)
    k = torch.arange(k_len, device=device)[None, :]
    return (q - k).abs() <= window


@MASKS.register("strided")
def strided_mask(q_len, k_len, device, stride=4, **_):
    """Child et al. 2019 (arXiv:1904.10509): the previous ``stride`` positions plus every stride-th."""
    q = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)
    k = torch.arange(k_len, device=device)[None, :]
    return (k <= q) & (((q - k) < stride) | ((k % stride) == stride - 1))


@MASKS.register("axial")
def axial_mask(q_len, k_len, device, grid=0, prefix=1, **_):
    """Ho et al. 2019 (arXiv:1912.12180): a patch sees its own row and column of the grid.

    ``prefix`` leading tokens (CLS) see and are seen by everything.
    """
    allowed = torch.zeros(q_len, k_len, dtype=torch.bool, device=device)
    side = grid or math.isqrt(k_len - prefix)
    pos = torch.arange(k_len - prefix, device=device)
    row, col = pos // side, pos % side
    allowed[prefix:, prefix:] = (row[:, None] == row[None, :]) | (col[:, None] == col[None, :])
    allowed[:prefix, :] = True
    allowed[:, :prefix] = True
    return allowed


def apply_mask(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Additive float masks are added; boolean masks (True = keep) fill the rest with the dtype's min."""
    if mask is None:
        return scores
    mask = mask[..., : scores.shape[-1]]
    if mask.dtype == torch.bool:
        return scores.masked_fill_(~mask, torch.finfo(scores.dtype).min)
    return scores.add_(mask)  # scores are always a fresh (B, H, Q, K) tensor from a score function


def add_bias(mask: torch.Tensor | None, bias: torch.Tensor | None) -> torch.Tensor | None:
    """T5's relative position bias (1 or B, H, Q, K) and the mask become one additive float mask."""
    if bias is None or mask is None:
        return mask if bias is None else bias
    mask = mask[..., : bias.shape[-1]]
    if mask.dtype == torch.bool:
        return torch.where(mask, bias, torch.finfo(bias.dtype).min)
    return bias + mask


def mask_future(scores: torch.Tensor, start: int) -> torch.Tensor:
    """Causal masking of the query rows ``start .. start + n`` of ``scores`` (B, H, n, W), in place: a query sees the
    keys up to its own position (top-left aligned, as SDPA's ``is_causal``); the rest get the dtype's min, which the
    softmax turns into exactly 0, as a boolean mask does. The mask is added as a float (n, W) tensor (float16 is
    filled): masked_fill_ with a broadcast boolean mask costs several times more."""
    n, width = scores.shape[-2:]
    if width <= start + 1:  # every key is at or before the first row
        return scores
    part = scores[..., start + 1:]  # only the keys past the first row
    if scores.dtype == torch.float16:  # float16's few bits move min + s off min (to -inf below -16): fill instead
        part.masked_fill_(_past(n, width, start, scores.device), torch.finfo(scores.dtype).min)
        return scores
    small = n * (width - start - 1) <= SMALL_MASK
    part.add_((_future if small else _future.__wrapped__)(n, width, start, scores.dtype, scores.device))
    return scores


SMALL_MASK = 2**16  # causal masks of at most this many cells are kept for the next call of the same shape


@functools.lru_cache(maxsize=16)
def _future(n: int, width: int, start: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(n, W - start - 1): the dtype's min where key start + 1 + j is past query start + i, else 0. Added to a score
    (float32, bfloat16) it gives the min exactly: a score is far below the min's last bit."""
    return _past(n, width, start, device).to(dtype).mul_(torch.finfo(dtype).min)


def _past(n: int, width: int, start: int, device: torch.device) -> torch.Tensor:
    """(n, W - start - 1) boolean: True where key start + 1 + j is past query start + i."""
    rows = torch.arange(start, start + n, device=device)
    return torch.arange(start + 1, width, device=device)[None, :] > rows[:, None]
