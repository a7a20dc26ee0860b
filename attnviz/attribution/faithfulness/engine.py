"""The one curve engine of faithfulness, for texts and images alike.

Units (tokens, pixels) are ranked by a map's scores; step k of a curve removes (or, for insertion,
restores) the k best-ranked units of an example and records a value of the model's output (the
target's probability, or whether the image keeps its label). The area under the curve summarises it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch


def ranks(scores: torch.Tensor, exclude: torch.Tensor | None = None, descending: bool = True) -> torch.Tensor:
    """(B, N) rank of each unit by its score (0 = first removed); ``exclude`` (B, N) bool units rank last."""
    keyed = scores.float()
    if exclude is not None:
        keyed = keyed.masked_fill(exclude, float("-inf") if descending else float("inf"))
    order = keyed.argsort(dim=-1, descending=descending, stable=True)  # (B, N)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return rank if exclude is None else rank.masked_fill(exclude, order.shape[1])


def removal_values(rank: torch.Tensor, rows: torch.Tensor, removed: torch.Tensor,
                   value: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``value(rows, gone)`` (n,) for curve points: point i removes the ``removed[i]`` best units of example
    ``rows[i]``; ``gone`` (n, N) bool marks them. ``value`` runs the model on the changed inputs."""
    gone = rank[rows] < removed[:, None]  # (n, N)
    return value(rows, gone)


def area(curve, x=None) -> float:
    """Trapezoid area under a curve: over [0, 1] evenly, or over ``x`` scaled to [0, 1] by its range."""
    if x is not None:
        y, x = np.asarray(curve, dtype=np.float64), np.asarray(x, dtype=np.float64)
        return float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum() / (x[-1] - x[0]))  # numpy 1.x has no trapezoid
    if len(curve) < 2:
        return float(curve[0]) if curve else 0.0
    step = 1.0 / (len(curve) - 1)
    return float(sum((a + b) * step / 2 for a, b in zip(curve, curve[1:])))
