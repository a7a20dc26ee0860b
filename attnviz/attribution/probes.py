"""The trained toys' attention measured against their ground truth, through attnviz's own capture.

``induction_scores``: for toy-induction, the mean attention each (layer, head) puts from query
``target - 1`` on the induction key ``source`` (Olsson et al. 2022, arXiv:2209.11895).
``antidiagonal_scores``: for toy-reverse, the share of target positions whose cross-attention argmax
is the aligned source token (Bahdanau et al. 2014, arXiv:1409.0473).
"""

from __future__ import annotations

import torch

from attnviz.recording import capture


def induction_scores(loaded, examples: list[dict], chunk: int = 100) -> torch.Tensor:
    """(layer, head) mean attention on the induction position over every copied token."""
    total, count = None, 0
    for i in range(0, len(examples), chunk):
        part = examples[i: i + chunk]
        maps = capture(loaded, [e["text"] for e in part])
        w = maps.weights  # (L, B, H, Q, K)
        for b, e in enumerate(part):
            q = torch.tensor([t - 1 for t, _ in e["copies"]])
            k = torch.tensor([s for _, s in e["copies"]])
            hit = w[:, b][:, :, q, k].sum(-1)  # (L, H)
            total = hit if total is None else total + hit
            count += len(q)
    return total / max(count, 1)


def antidiagonal_scores(loaded, examples: list[dict], chunk: int = 100) -> torch.Tensor:
    """(layer, head) share of output positions whose cross-attention argmax is the aligned token.

    The decoder reads its own greedy output, as `attnviz capture` does."""
    right, total = None, 0
    for i in range(0, len(examples), chunk):
        part = examples[i: i + chunk]
        maps = capture(loaded, [e["text"] for e in part])
        top = maps.cross.argmax(-1)  # (L, B, H, T)
        for b, e in enumerate(part):
            # A model that stops early has no query for the later outputs: those count as misses.
            pairs = [(t, s) for t, s in e["alignment"] if t < top.shape[-1]]
            q = torch.tensor([t for t, _ in pairs], dtype=torch.long)
            k = torch.tensor([s for _, s in pairs], dtype=torch.long)
            hit = (top[:, b][:, :, q] == k).sum(-1)  # (L, H)
            right = hit if right is None else right + hit
            total += len(e["alignment"])
    return right.float() / max(total, 1)


def best(scores: torch.Tensor) -> tuple[int, int, float]:
    """(layer, head, score) of the highest entry of a (layer, head) table."""
    flat = int(scores.argmax())
    layer, head = divmod(flat, scores.shape[1])
    return layer, head, float(scores[layer, head])


def measure(loaded, examples: list[dict]) -> dict:
    """The attention check of a trained toy, as stored with its weights ({} for tasks without one)."""
    if loaded.name == "toy-induction" or loaded.task == "causal-lm":
        layer, head, score = best(induction_scores(loaded, examples))
        return {"induction_head": [layer, head], "induction_attention": round(score, 4)}
    if loaded.task == "seq2seq":
        layer, head, score = best(antidiagonal_scores(loaded, examples))
        return {"antidiagonal_head": [layer, head], "antidiagonal_argmax": round(score, 4)}
    return {}
