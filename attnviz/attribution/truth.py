"""Fresh examples of a trained toy with the token positions that decide its output (ground truth).

Each entry turns a generator example (``attnviz.models.toys.data``) into the text to explain and the
deciding token positions, counted as the toy's tokenizer counts them.
"""

from __future__ import annotations

from typing import Callable

from attnviz.errors import BadInput
from attnviz.registry import Registry

# toy name -> fn(example dict) -> (text, deciding token positions)
TRUTH: Registry[Callable] = Registry("toy with ground truth")


@TRUTH.register("toy-sentiment")
def _sentiment(ex: dict) -> tuple[str, list[int]]:
    return ex["text"], list(ex["deciding"])


@TRUTH.register("toy-induction")
def _induction(ex: dict) -> tuple[str, list[int]]:
    # Cut the second copy's last symbol: the next token (the default target) repeats token n, the last of
    # the first copy ([BOS] is token 0), which an induction head reads.
    n = ex["segment"]
    return ex["text"][:-1], [n]


@TRUTH.register("toy-reverse")
def _reverse(ex: dict) -> tuple[str, list[int]]:
    # The default target is the first output token, a copy of the last source character: token n.
    return ex["text"], [len(ex["text"])]


def generated(model: str, n: int, seed: int = 0) -> tuple[list[str], list[list[int]]]:
    """``n`` fresh examples of ``model`` (a trained toy): texts and deciding positions."""
    if model not in TRUTH:
        raise BadInput(f"--generated needs a toy with ground truth: {', '.join(TRUTH.names())}, not {model!r}")
    if n < 1:
        raise BadInput(f"--generated must be at least 1, not {n}")
    from attnviz.models.toys.data import generate

    pairs = [TRUTH.get(model)(ex) for ex in generate(model, n, seed)]
    return [t for t, _ in pairs], [d for _, d in pairs]
