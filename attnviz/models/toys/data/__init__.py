"""Synthetic tasks of the trained toys; every generator also returns the ground truth.

``generate(name, n, seed)`` returns ``n`` examples (dicts, JSON-ready except the shapes' arrays) and is
deterministic for a seed: it draws from ``numpy.random.default_rng(seed)`` only. Each task module
documents its example fields. Held-out data for accuracy uses ``heldout_seed(seed)``, a stream that
training (which uses ``seed``) never sees.
"""

from __future__ import annotations

from typing import Callable

from attnviz.errors import BadInput
from attnviz.registry import Registry

# toy name -> fn(n, seed) -> list of example dicts
GENERATORS: Registry[Callable] = Registry("toy task")


def heldout_seed(seed: int) -> int:
    """The evaluation stream for a training seed (far from any seed a user would pick)."""
    return 1_000_003 + 7919 * int(seed)


def generate(name: str, n: int, seed: int = 0) -> list[dict]:
    if n < 1:
        raise BadInput(f"--n must be at least 1, not {n}")
    if seed < 0:
        raise BadInput(f"--seed must be >= 0, not {seed}")
    return GENERATORS.get(name)(n, seed)


# Registration happens on import of the task modules.
from attnviz.models.toys.data import sentiment, sequences, shapes  # noqa: E402,F401

__all__ = ["GENERATORS", "generate", "heldout_seed"]
