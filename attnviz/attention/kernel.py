"""THE attention function, with the Hugging Face attention-interface signature.

Every model attnviz runs (its own toys and Hugging Face models) computes attention here. A module
that carries a callable under ``SINK`` receives its weights (B, H, Q, K); ``capture.recording``
installs and removes those sinks. A module without a sink and with the standard score takes the
fused SDPA path, so layers that are not recorded cost what they cost without attnviz.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from attnviz.errors import BadInput
from attnviz.registry import Registry

SINK = "_attnviz_sink"  # attribute name of the recording callback on an attention module

# name -> fn(module, query, key, scaling) -> scores (B, H, Q, K)
SCORES: Registry[Callable] = Registry("score function")
# name -> fn(q_len, k_len, device, **options) -> bool (Q, K), True where attention is allowed
MASKS: Registry[Callable] = Registry("mask pattern")


@SCORES.register("scaled-dot")
def scaled_dot(module, query, key, scaling):
    """Vaswani et al. 2017 (arXiv:1706.03762)."""
    # In place: the product is a fresh tensor that autograd does not need, one allocation fewer than eager.
    return torch.matmul(query, key.transpose(2, 3)).mul_(scaling)  # (B, H, Q, K)


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


def repeat_kv(states: torch.Tensor, groups: int) -> torch.Tensor:
    """Grouped-query attention: (B, Hkv, K, D) -> (B, Hkv * groups, K, D)."""
    if groups == 1:
        return states
    b, h, k, d = states.shape
    return states[:, :, None].expand(b, h, groups, k, d).reshape(b, h * groups, k, d)


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


# Keywords the attention interface passes that do not change the arithmetic here: positions and sliding windows
# are already in the mask (the mask function registered with the kernel builds it), the rest steer caching.
IGNORED = frozenset({"position_ids", "sliding_window", "use_cache", "output_router_logits", "output_attentions",
                     "cache_position", "past_key_values", "past_key_value", "layer_idx", "attention_type",
                     "deterministic", "output_hidden_states", "return_dict"})
HONOURED = frozenset({"position_bias", "softcap", "s_aux", "score", "is_causal"})


def check_keywords(module: torch.nn.Module, kwargs: dict) -> None:
    """A keyword the kernel neither honours nor can safely ignore would give plausible but wrong weights: refuse it."""
    unknown = sorted(k for k, v in kwargs.items() if v is not None and k not in IGNORED | HONOURED)
    if unknown:
        raise BadInput(f"{type(module).__name__} passes {', '.join(unknown)} to its attention, which attnviz's "
                       "kernel does not compute; this model cannot be explained exactly")


def is_causal(module: torch.nn.Module, query: torch.Tensor, mask: torch.Tensor | None, kwargs: dict) -> bool:
    """Whether a missing mask stands for a causal one, read as SDPA reads it: the mask function registered with the
    kernel (``sdpa_mask``) leaves out a plain causal mask, and the keyword ``is_causal`` or the module's attribute
    says so; a single query (decoding) sees every key. A module without the attribute (attnviz's own always pass
    their mask) is not causal."""
    if mask is not None or query.shape[2] == 1:
        return False
    flag = kwargs.get("is_causal")
    return bool(getattr(module, "is_causal", False) if flag is None else flag)


def mask_future(scores: torch.Tensor, start: int) -> torch.Tensor:
    """Causal masking of the query rows ``start .. start + n`` of ``scores`` (B, H, n, W), in place: a query sees the
    keys up to its own position (top-left aligned, as SDPA's ``is_causal``); the rest get the dtype's min, as a
    boolean mask does."""
    n, width = scores.shape[-2:]
    if width <= start + 1:  # every key is at or before the first row
        return scores
    rows = torch.arange(start, start + n, device=scores.device)
    future = torch.arange(start + 1, width, device=scores.device)[None, :] > rows[:, None]  # (n, W - start - 1)
    scores[..., start + 1:].masked_fill_(future, torch.finfo(scores.dtype).min)  # only keys past the first row
    return scores


def soft_cap(scores: torch.Tensor, cap: float | None) -> torch.Tensor:
    """Gemma 2's logit soft-capping: tanh(s / c) * c, before the mask."""
    return scores if cap is None else torch.tanh(scores / cap) * cap


def with_sink(scores: torch.Tensor, sinks: torch.Tensor) -> torch.Tensor:
    """gpt-oss's attention sinks: one learned logit per head joins every row's softmax and takes its share.

    Returns the real keys' share (B, H, Q, K) in float32; each row sums to 1 minus the sink's share.
    """
    b, h, q, _ = scores.shape
    sink = sinks.reshape(1, h, 1, 1).expand(b, h, q, 1).to(scores.dtype)  # (B, H, Q, 1)
    combined = torch.cat([scores, sink], dim=-1)  # (B, H, Q, K + 1)
    combined = combined - combined.amax(dim=-1, keepdim=True)  # as the eager model does, for half precision
    return F.softmax(combined, dim=-1, dtype=torch.float32)[..., :-1]  # (B, H, Q, K)


def softmax(scores: torch.Tensor, sink) -> torch.Tensor:
    """Softmax in float32, cast back. A recording may offer a buffer for the weights it keeps: when that is exactly
    the weights (same shape and dtype) the softmax writes straight into it; otherwise (float16 or fewer heads kept)
    the recording copies them out, so they are computed over the scores in place and exist once in float32."""
    target = None
    if scores.dtype == torch.float32 and not scores.requires_grad and hasattr(sink, "target"):
        target = sink.target(scores.shape, scores.dtype, scores.device)
    if target is None:
        return F.softmax(scores, dim=-1, dtype=torch.float32).to(scores.dtype)
    if target.shape == scores.shape and target.dtype == scores.dtype and target.device == scores.device:
        return torch.softmax(scores, dim=-1, dtype=torch.float32, out=target)
    return softmax_in_place(scores)


def softmax_in_place(scores: torch.Tensor, block_bytes: int = 16 * 2**20) -> torch.Tensor:
    """Each row's softmax over ``scores`` (B, H, Q, K) itself, a block of rows at a time; rows are independent, so
    the values are those of one softmax over the whole, with one block of temporary memory instead of a copy."""
    b, h, q, k = scores.shape
    rows = min(q, max(1, block_bytes // max(1, scores.element_size() * b * h * k)))
    spare = scores.new_empty(b, h, rows, k)  # (B, H, rows, K), reused by every block
    for start in range(0, q, rows):
        block = scores[:, :, start:start + rows]  # (B, H, n, K), a view
        out = spare[:, :, : block.shape[2]]
        block.copy_(torch.softmax(block, dim=-1, out=out))
    return scores


def attention(
    module: torch.nn.Module,
    query: torch.Tensor,  # (B, H, Q, D)
    key: torch.Tensor,  # (B, Hkv, K, D)
    value: torch.Tensor,  # (B, Hkv, K, Dv)
    attention_mask: torch.Tensor | None,  # (B or 1, 1 or H, Q, K) float additive or bool
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Returns (output (B, Q, H, Dv), weights (B, H, Q, K) or None on the unrecorded fast path)."""
    check_keywords(module, kwargs)
    causal = is_causal(module, query, attention_mask, kwargs)
    attention_mask = add_bias(attention_mask, kwargs.get("position_bias"))
    groups = getattr(module, "num_key_value_groups", None) or query.shape[1] // key.shape[1]
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    score = kwargs.get("score") or getattr(module, "attnviz_score", "scaled-dot")
    sink = getattr(module, SINK, None)
    drop = dropout if module.training else 0.0
    cap, sinks = kwargs.get("softcap"), kwargs.get("s_aux")
    rows = sink.block_rows((query.shape[0], query.shape[1], query.shape[2], key.shape[2])) \
        if hasattr(sink, "block_rows") and not (torch.is_grad_enabled() or module.training) else None
    if rows:
        return _blocked(module, (query, key, value, groups), (attention_mask, causal), scaling, (score, cap, sinks),
                        sink, rows)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    if sink is None and score == "scaled-dot" and cap is None and sinks is None:
        mask = attention_mask[..., : key.shape[-2]] if attention_mask is not None else None
        if mask is not None and mask.dtype != torch.bool:
            mask = mask.to(query.dtype)
        if causal and mask is not None:  # a position bias without a mask: SDPA takes one or the other
            mask = mask_future(mask.expand(*query.shape[:3], key.shape[2]).clone(), 0)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=drop, scale=scaling,
                                             is_causal=causal and mask is None)
        return out.transpose(1, 2).contiguous(), None  # (B, Q, H, Dv)
    scores = soft_cap(SCORES.get(score)(module, query, key, scaling), cap)  # (B, H, Q, K)
    scores = apply_mask(scores, attention_mask)
    if causal:
        scores = mask_future(scores, 0)
    weights = softmax(scores, sink) if sinks is None else with_sink(scores, sinks).to(scores.dtype)  # (B, H, Q, K)
    if sink is not None:
        sink(weights)
    dropped = F.dropout(weights, p=drop, training=module.training)
    out = torch.matmul(dropped, value)  # (B, H, Q, Dv)
    return out.transpose(1, 2).contiguous(), weights  # (B, Q, H, Dv)


def _blocked(module, qkvg, masks, scaling, how, sink, rows: int):
    """The same arithmetic as the full path, ``rows`` queries at a time: each block's softmax is exact (its rows are
    whole), the sink reduces it (``sink.block(weights, start, scores)``), and no (Q, K) tensor ever exists.

    Under a causal mask a block's rows see no key past its last row: the keys after it (weight exactly 0) are not
    computed, and the sink gets the block's first W keys (B, H, n, W). The query heads that share a key head
    (grouped-query attention) are multiplied with it as one (groups * n)-row matrix: fewer, larger products, and
    the keys are never repeated."""
    query, key, value, groups = qkvg  # (B, H, Q, D), (B, Hkv, K, D), (B, Hkv, K, Dv), H // Hkv
    (mask, causal), (score, cap, sinks) = masks, how
    b, h, q_len, _ = query.shape
    k_len = key.shape[2]
    out = query.new_empty(b, q_len, h, value.shape[-1])  # (B, Q, H, Dv)
    for start in range(0, q_len, rows):
        stop = min(start + rows, q_len)
        n, width = stop - start, min(stop, k_len) if causal else k_len
        part = None if mask is None or mask.shape[-2] == 1 else mask[..., start:stop, :]  # (B, 1|H, n, K)
        grouped = query[:, :, start:stop].reshape(b, h // groups, groups * n, -1)  # (B, Hkv, G * n, D)
        scores = SCORES.get(score)(module, grouped, key[:, :, :width], scaling).reshape(b, h, n, width)  # (B, H, n, W)
        scores = apply_mask(soft_cap(scores, cap), mask if part is None else part)
        if causal:
            scores = mask_future(scores, start)
        weights = F.softmax(scores, dim=-1, dtype=torch.float32) if sinks is None else with_sink(scores, sinks)
        sink.block(weights, start, scores)
        mixed = torch.matmul(weights.to(value.dtype).reshape(b, h // groups, groups * n, width), value[:, :, :width])
        out[:, start:stop] = mixed.reshape(b, h, n, -1).transpose(1, 2)  # (B, n, H, Dv)
    return out, None  # (B, Q, H, Dv)
