"""toy-induction and toy-reverse: random symbol sequences (Latin letters and Chinese characters).

toy-induction (a causal LM, arXiv:2209.11895 for induction heads): ``text`` is a random segment of
distinct symbols written twice, e.g. "qhx猫bqhx猫b". Example fields: ``{"text", "segment" (its
length n), "copies"}``; ``copies`` lists ``[target, source]`` token indices (the tokenizer puts [BOS]
at 0, so character i is token i + 1): the token at ``target`` repeats the one at ``source`` =
``target - n``. Only targets after the first repeated token are predictable; those are listed.
The induction head reads query ``target - 1`` and attends to key ``source``.

toy-reverse (an encoder-decoder, distinct symbols): ``{"text", "target" (text reversed), "alignment"}``, where
``alignment`` lists ``[output_index, source_token]`` pairs: output character t copies source
character n-1-t, which is encoder token n-t (after [CLS]): the anti-diagonal of Bahdanau et al.
2014 (arXiv:1409.0473).
"""

from __future__ import annotations

import numpy as np

from attnviz.models.toys.data import GENERATORS

ALPHABET = list("abcdefghijklmnopqrstuvwxyz") + list("猫狗鱼鸟山水火木日月人口手心天地")
INDUCTION_LENGTHS = (6, 16)  # segment length range, inclusive
REVERSE_LENGTHS = (3, 16)


def vocabulary() -> list[str]:
    return sorted(ALPHABET)


@GENERATORS.register("toy-induction")
def induction(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        size = int(rng.integers(INDUCTION_LENGTHS[0], INDUCTION_LENGTHS[1] + 1))
        # Distinct symbols: every token of the segment has one earlier occurrence to copy from.
        segment = "".join(str(s) for s in rng.choice(ALPHABET, size=size, replace=False))
        copies = [[t, t - size] for t in range(size + 2, 2 * size + 1)]
        out.append({"text": segment + segment, "segment": size, "copies": copies})
    return out


@GENERATORS.register("toy-reverse")
def reverse(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        size = int(rng.integers(REVERSE_LENGTHS[0], REVERSE_LENGTHS[1] + 1))
        # Distinct symbols, so that "the symbol before the one just written" names one source position.
        text = "".join(str(s) for s in rng.choice(ALPHABET, size=size, replace=False))
        out.append({"text": text, "target": text[::-1], "alignment": [[t, size - t] for t in range(size)]})
    return out
