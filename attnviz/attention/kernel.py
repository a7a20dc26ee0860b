"""THE attention function, with the Hugging Face attention-interface signature.

Every model attnviz runs (its own toys and Hugging Face models) computes attention here. A module
that carries a callable under ``SINK`` receives its weights (B, H, Q, K); ``capture.recording``
installs and removes those sinks. A module without a sink and with the standard score takes the
fused SDPA path, so layers that are not recorded cost what they cost without attnviz; so does a module
whose sink keeps only some query rows (``query_rows``), whose weights are then computed for those rows
alone. The score functions and mask patterns it computes are in ``scores`` and ``masks``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from attnviz.attention.masks import MASKS, add_bias, apply_mask, mask_future
from attnviz.attention.scores import PLAIN, SCORES, soft_cap
from attnviz.errors import BadInput

__all__ = ["MASKS", "SCORES", "SINK", "attention", "repeat_kv"]

SINK = "_attnviz_sink"  # attribute name of the recording callback on an attention module
# SDPA takes grouped-query keys and values as they are from torch 2.5; like transformers' SDPA path, attnviz passes them
# so only where no fused kernel would give way to the math one (which builds every score): no mask, head dims up to
# 256 and, on a GPU, half precision
GQA = torch.__version__ >= "2.5"


def repeat_kv(states: torch.Tensor, groups: int) -> torch.Tensor:
    """Grouped-query attention: (B, Hkv, K, D) -> (B, Hkv * groups, K, D)."""
    if groups == 1:
        return states
    b, h, k, d = states.shape
    return states[:, :, None].expand(b, h, groups, k, d).reshape(b, h * groups, k, d)


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
    rows = sink.block_rows((query.shape[0], query.shape[1], query.shape[2], key.shape[2]), query.device) \
        if hasattr(sink, "block_rows") and not (torch.is_grad_enabled() or module.training) else None
    if rows:
        return _blocked(module, (query, key, value, groups), (attention_mask, causal), scaling, (score, cap, sinks),
                        sink, rows)
    wanted = getattr(sink, "query_rows", None) if not (torch.is_grad_enabled() or module.training) else None
    if (sink is None or wanted) and score == "scaled-dot" and cap is None and sinks is None:
        out = _fused(query, key, value, attention_mask, causal, groups, scaling, drop)
        if wanted:  # only these query rows' weights are kept: SDPA gives the output, the rows are computed apart
            sink(_row_weights(module, query, key, attention_mask, causal, groups, scaling, wanted), wanted[0])
        return out, None
    # the keys are repeated per query head, as eager does: the products then round exactly as eager's
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    scores = soft_cap(SCORES.get(score)(module, query, key, scaling), cap)  # (B, H, Q, K)
    scores = apply_mask(scores, attention_mask)
    if causal:
        scores = mask_future(scores, 0)
    weights = softmax(scores, sink) if sinks is None else with_sink(scores, sinks).to(scores.dtype)  # (B, H, Q, K)
    if sink is not None:
        sink(weights)
    dropped = F.dropout(weights, p=drop, training=True) if drop else weights
    out = torch.matmul(dropped, value)  # (B, H, Q, Dv)
    return out.transpose(1, 2).contiguous(), weights  # (B, Q, H, Dv)


def _fused(query, key, value, attention_mask, causal: bool, groups: int, scaling: float, drop: float) -> torch.Tensor:
    """The output (B, Q, H, Dv) of PyTorch's fused attention (SDPA), no weights."""
    mask = attention_mask[..., : key.shape[-2]] if attention_mask is not None else None
    if mask is not None and mask.dtype != torch.bool:
        mask = mask.to(query.dtype)
    if causal and mask is not None:  # a position bias without a mask: SDPA takes one or the other
        mask = mask_future(mask.expand(*query.shape[:3], key.shape[2]).clone(), 0)
    gqa = GQA and groups > 1 and mask is None and key.shape[-1] == value.shape[-1] <= 256 and (
        query.device.type == "cpu" or query.dtype in (torch.float16, torch.bfloat16))  # else CUDA falls to math
    if not gqa:  # one key head per query head, repeated
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=drop, scale=scaling,
                                         is_causal=causal and mask is None, **({"enable_gqa": True} if gqa else {}))
    return out.transpose(1, 2).contiguous()  # (B, Q, H, Dv)


def _row_weights(module, query, key, mask, causal: bool, groups: int, scaling: float,
                 rows: tuple[int, int]) -> torch.Tensor:
    """The weights (B, H, n, K) of query rows [start, stop) alone, computed as the full path computes them (keys
    repeated per head, the mask's rows, the causal cut from row ``start``)."""
    start, stop = rows[0], min(rows[1], query.shape[2])
    scores = SCORES.get("scaled-dot")(module, query[:, :, start:stop], repeat_kv(key, groups), scaling)  # (B, H, n, K)
    part = None if mask is None or mask.shape[-2] == 1 else mask[..., start:stop, :]
    scores = apply_mask(scores, mask if part is None else part)
    if causal:
        scores = mask_future(scores, start)
    return F.softmax(scores, dim=-1, dtype=torch.float32).to(scores.dtype)


def _blocked(module, qkvg, masks, scaling, how, sink, rows: int):
    """The same arithmetic as the full path, ``rows`` queries at a time: each block's softmax is exact (its rows are
    whole), the sink reduces it (``sink.block(weights, start, scores)``; both tensors are the kernel's buffers,
    valid only during the call), and no (Q, K) tensor ever exists.

    Under a causal mask a block's rows see no key past its last row: the keys after it (weight exactly 0) are not
    computed, and the sink gets the block's first W keys (B, H, n, W); an early block, seeing fewer keys, takes more
    rows (``causal_rows``). The query heads that share a key head (grouped-query attention) are multiplied with it as
    one (groups * n)-row matrix: fewer, larger products, and the keys are never repeated."""
    query, key, value, groups = qkvg  # (B, H, Q, D), (B, Hkv, K, D), (B, Hkv, K, Dv), H // Hkv
    (mask, causal), (score, cap, sinks) = masks, how
    b, h, q_len, _ = query.shape
    k_len = key.shape[2]
    prescale = score == "scaled-dot"  # each block's queries (n x D) are scaled, not its scores (n x W)
    out = query.new_empty(b, q_len, h, value.shape[-1])  # (B, Q, H, Dv)
    # one (scores, weights) pair of buffers for all blocks, each the size of the largest: no allocation per block
    spare = query.new_empty(2, b * h * min(rows, q_len) * k_len) if query.dtype == torch.float32 else None
    start = 0
    while start < q_len:
        stop = min(start + (causal_rows(start, rows, k_len) if causal else rows), q_len)
        n, width = stop - start, min(stop, k_len) if causal else k_len
        part = None if mask is None or mask.shape[-2] == 1 else mask[..., start:stop, :]  # (B, 1|H, n, K)
        grouped = query[:, :, start:stop].reshape(b, h // groups, groups * n, -1)  # (B, Hkv, G * n, D)
        grouped = grouped * scaling if prescale else grouped
        into = None if spare is None else spare[:, : b * h * n * width].view(2, b, h, n, width)  # (2, B, H, n, W)
        keys = key[:, :, :width]  # (B, Hkv, W, D)
        if into is not None and score in PLAIN:  # scaled-dot's scaling is already in the queries
            scores = torch.matmul(grouped, keys.transpose(2, 3), out=into[0].view(*grouped.shape[:3], width))
        else:
            scores = SCORES.get(score)(module, grouped, keys, 1.0 if prescale else scaling)
        scores = apply_mask(soft_cap(scores.reshape(b, h, n, width), cap), mask if part is None else part)
        if causal:
            scores = mask_future(scores, start)  # (B, H, n, W)
        if sinks is not None:
            weights = with_sink(scores, sinks)
        elif into is None:
            weights = F.softmax(scores, dim=-1, dtype=torch.float32)
        else:
            weights = torch.softmax(scores, -1, out=into[1])
        sink.block(weights, start, scores)
        mixed = torch.matmul(weights.to(value.dtype).reshape(b, h // groups, groups * n, width), value[:, :, :width])
        out[:, start:stop] = mixed.reshape(b, h, n, -1).transpose(1, 2)  # (B, n, H, Dv)
        start = stop
    return out, None  # (B, Q, H, Dv)


def causal_rows(start: int, rows: int, k_len: int) -> int:
    """Rows of a causal block from query ``start``: as many as keep its scores, n x (start + n), within the
    ``rows`` x ``k_len`` of a full block. The early blocks see few keys and take more rows: about half as many
    blocks over a causal input, each costing what the largest one costs."""
    return max(rows, (math.isqrt(start * start + 4 * rows * k_len) - start) // 2)
