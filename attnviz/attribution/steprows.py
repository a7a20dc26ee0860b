"""Gradient methods over the steps of an answer: one row per explained step, several steps per pass.

A step's row is its example's prompt and the answer up to the step's last token (right-padded), whose
target is that token (``targets.generated``); a batch of such rows is an ordinary ``Context``, so every
registered text method runs on it unchanged: one forward and one backward pass explain up to ``chunk``
steps at once (integrated gradients and occlusion run their variants ``chunk`` at a time as usual).
"""

from __future__ import annotations

from dataclasses import dataclass

from attnviz.attribution.context import Context, embedded
from attnviz.attribution.forced import Forced
from attnviz.attribution.targets import TARGETS, TargetSpec
from attnviz.attribution.tokens import run_method
from attnviz.models.loaded import token_names


@dataclass(frozen=True)
class StepRow:
    example: int
    unit: int  # index into forced.units[example]
    first: int  # first answer token explained
    last: int  # last answer token explained

    def length(self, forced: Forced) -> int:
        """Positions of the row: the prompt and the answer before the step's last token."""
        return len(forced.prompts[self.example]) + self.last


def step_rows(forced: Forced) -> list[StepRow]:
    """Every unit of every example, shortest rows first (a group of rows is cut to its longest)."""
    rows = [StepRow(b, u, first, last) for b, units in enumerate(forced.units) for u, (first, last) in enumerate(units)]
    return sorted(rows, key=lambda r: r.length(forced))


def rows_context(loaded, forced: Forced, rows: list[StepRow], fill: int, chunk: int) -> Context:
    """A Context whose examples are ``rows``: ids (n, S') cut to each row's length, targets its tokens."""
    from attnviz.models.generate import padded

    seqs = [(forced.prompts[r.example] + forced.answers[r.example])[: r.length(forced)] for r in rows]
    ids, mask = padded(seqs, fill, False, loaded.device)
    batch = {"input_ids": ids, "attention_mask": mask}
    explained = tuple(tuple(forced.answers[r.example][r.first: r.last + 1]) for r in rows)
    embeds, special = embedded(loaded, ids, mask)  # (n, S', D), (n, S')
    # no forward pass of its own: each step's probability comes from the teacher-forced pass over the answer
    target = TARGETS.get("generated-token")(loaded, batch, None, TargetSpec(label=explained))
    tokens = [token_names(loaded.tokenizer, row.tolist()) for row in ids]
    return Context(loaded, batch, tokens, mask, target, embeds, special, chunk=chunk)


def gradient_scores(loaded, forced: Forced, method: str, options, fill: int, chunk: int):
    """Per example, per unit: (scores (float32) over positions 0 .. P + last - 1, the method's facts for that row)."""
    out = [[None] * len(units) for units in forced.units]
    rows = step_rows(forced)
    for start in range(0, len(rows), chunk):
        group = rows[start: start + chunk]
        ctx = rows_context(loaded, forced, group, fill, chunk)
        attr = run_method(ctx, method, options)
        if method == "attn-grad":
            # Chefer's rule starts from the identity: each row's own residual, always 1, would outrank every
            # position that attention brought in. The generated view shows what attention brought.
            attr.scores -= ctx.target.rows.float().cpu()
        scores = attr.scores.numpy()  # (rows, S') float32 on the CPU: each step's row is a view
        for i, r in enumerate(group):
            facts = {k: v[i] for k, v in attr.extra.items() if isinstance(v, list) and len(v) == len(group)}
            out[r.example][r.unit] = (scores[i, : r.length(forced)], facts)
    return out
