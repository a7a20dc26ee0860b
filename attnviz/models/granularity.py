"""Scores per word or per character instead of per token (--granularity token|word|char).

Tokens are grouped by the bounds that encoding records (models/readable.py: W starts a word, C continues
it, + finishes a character of the token before). ``char`` joins only the byte pieces of one character (a
Chinese character split over two byte-level tokens becomes one); ``word`` joins the tokens of a
whitespace-delimited word, each CJK character being a word of its own. Attention is summed over the keys of
a group and averaged over its queries, so that every row still sums to one; attribution scores are summed.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from attnviz.errors import BadInput
from attnviz.models.readable import CONTINUES

GRANULARITIES = ("token", "word", "char")


def check_granularity(granularity: str) -> None:
    if granularity not in GRANULARITIES:
        raise BadInput(f"--granularity must be one of {', '.join(GRANULARITIES)}, not {granularity!r}")


def group_ids(bounds: str, granularity: str) -> list[int]:
    """The group of each token: (S,) ints counting from 0, in order."""
    check_granularity(granularity)
    joins = "+" if granularity == "char" else "C+"
    out, group = [], -1
    for i, b in enumerate(bounds):
        group += 0 if (i and granularity != "token" and b in joins) else 1
        out.append(group)
    return out


def group_labels(labels: list[str], bounds: str, ids: list[int]) -> list[str]:
    """One label per group: its tokens' labels joined (a piece that only finishes a character adds nothing)."""
    out = [""] * (max(ids) + 1 if ids else 0)
    for label, b, g in zip(labels, bounds, ids):
        if out[g] and b == "+" and label.startswith(CONTINUES):
            continue
        out[g] += label[2:] if out[g] and b == "C" and label.startswith("##") else label
    return out


def membership(ids: list[int], size: int) -> torch.Tensor:
    """(S, G) one-hot: token s belongs to group ids[s]; G = ``size`` (padded groups stay empty)."""
    m = torch.zeros(len(ids), size)
    m[torch.arange(len(ids)), torch.tensor(ids, dtype=torch.long)] = 1.0
    return m


def pool_attention(weights: torch.Tensor, m: torch.Tensor, m_query: torch.Tensor | None = None) -> torch.Tensor:
    """(..., Q, K) -> (..., Gq, Gk): keys summed within a group, queries averaged within a group."""
    m_query = m if m_query is None else m_query
    mean_q = m_query / m_query.sum(0, keepdim=True).clamp(min=1.0)  # (Q, Gq)
    keys = weights.float() @ m.to(weights.device)  # (..., Q, Gk)
    return (mean_q.T.to(weights.device) @ keys).to(weights.dtype)  # (..., Gq, Gk)


def _bounds(maps_or_attr, e: int) -> str:
    """The bounds of example e, or every token a word of its own when they were not recorded."""
    n = len(maps_or_attr.tokens[e])
    b = maps_or_attr.bounds[e] if len(maps_or_attr.bounds) > e else ""
    return b if len(b) == n else "W" * n


def _plan(obj, granularity: str):
    """Per example: group ids, group labels, group mask; and the padded group count G."""
    per = []
    for e in range(len(obj.tokens)):
        b = _bounds(obj, e)
        ids = group_ids(b, granularity)
        labels = group_labels(obj.tokens[e], b, ids)
        real = [0] * len(labels)
        for g, keep in zip(ids, obj.mask[e].tolist()):
            real[g] = max(real[g], int(keep > 0))
        per.append((ids, labels, real))
    return per, max(len(p[1]) for p in per)


def group_maps(maps, granularity: str):
    """AttentionMaps over words or characters: weights (layer, B, head, G, G), mask (B, G), tokens per group."""
    if granularity == "token":
        return maps
    if maps.weights is None or maps.weights.shape[-2] != maps.weights.shape[-1]:
        raise BadInput("--granularity word|char needs full maps; these hold per-head statistics (long input)")
    per, size = _plan(maps, granularity)
    weights, cross = [], []
    for e, (ids, _, _) in enumerate(per):
        m = membership(ids, size)  # (S, G)
        weights.append(pool_attention(maps.weights[:, e], m))  # (L, H, G, G)
        if maps.cross is not None:  # keys are the source's tokens; the decoder's queries stay tokens
            cross.append(maps.cross[:, e].float() @ m.to(maps.cross.device))
    pad = lambda labels: labels + [""] * (size - len(labels))  # noqa: E731
    return replace(maps, weights=torch.stack(weights, 1),
                   cross=torch.stack(cross, 1).to(maps.cross.dtype) if cross else maps.cross,
                   mask=torch.tensor([real + [0] * (size - len(real)) for _, _, real in per], dtype=maps.mask.dtype),
                   tokens=[pad(labels) for _, labels, _ in per], pieces=[], bounds=[],
                   notes=[*maps.notes, f"attention pooled per {granularity}: keys summed, queries averaged"])


def group_attribution(attr, granularity: str):
    """An Attribution whose scores (B, G) are summed over the tokens of each word or character."""
    if granularity == "token":
        return attr
    per, size = _plan(attr, granularity)
    scores = torch.stack([attr.scores[e].float() @ membership(ids, size) for e, (ids, _, _) in enumerate(per)])
    mask = torch.tensor([real + [0] * (size - len(real)) for _, _, real in per], dtype=attr.mask.dtype)
    tokens = [labels + [""] * (size - len(labels)) for _, labels, _ in per]
    return replace(attr, scores=scores, mask=mask, tokens=tokens, pieces=[], bounds=[],
                   extra={**attr.extra, "granularity": granularity})
