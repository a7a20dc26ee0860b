"""Targets of the task heads that score tokens: a token classifier's label at one token (NER, POS tagging)
and a question-answering model's start or end of the answer span (extractive QA, SQuAD-style)."""

from __future__ import annotations

import torch

from attnviz.attribution.targets import FITS, TARGETS, TEXT_TARGETS, Target, TargetSpec, resolve_label
from attnviz.attribution.context import special_tokens
from attnviz.attribution.targets.text import _positions, real_positions
from attnviz.errors import BadInput
from attnviz.models.loaded import token_names

FITS["token-classification"] = "--target-token POS and/or --target LABEL|INDEX"
FITS["question-answering"] = "--target start|end|span (and optionally --target-token POS); inputs 'QUESTION ||| CONTEXT'"
TEXT_TARGETS.update({"token-classification": "token-label", "question-answering": "answer-span"})
OUTSIDE = "O"  # the IOB label of a token outside every entity
ENDS = ("start", "end", "span")
MAX_ANSWER = 30  # tokens in a predicted answer span (the Hugging Face pipeline's max_answer_len is 15 words)


def _one_hot(shape, at: torch.Tensor) -> torch.Tensor:
    rows = torch.zeros(shape, device=at.device)
    rows[torch.arange(len(at), device=at.device), at] = 1.0
    return rows


@TARGETS.register("token-label")
def token_label_target(loaded, batch, out, spec: TargetSpec) -> Target:
    """A token classifier's logit of one label at one token (B,) from its logits (B, S, C).

    The token is --target-token (counted over each input's real tokens); by default the text token where
    the chosen label is likeliest, and without --target the one where some label other than "O" is likeliest
    (the most confident entity). The label is --target, by default the token's prediction.
    """
    mask, logits = batch["attention_mask"], out.logits.float()  # (B, S), (B, S, C)
    labels = loaded.labels or [str(i) for i in range(logits.shape[-1])]
    probs = loaded.class_probs(logits)  # (B, S, C)
    b = len(mask)
    chosen = None if spec.label is None else resolve_label(spec.label, labels, [0] * b)
    real = real_positions(mask)
    text = (mask > 0) & ~special_tokens(loaded, batch["input_ids"])  # (B, S)
    if spec.position is None:
        if chosen is not None:
            score = probs[torch.arange(b), :, chosen]  # (B, S)
        else:
            entity = [i for i, name in enumerate(labels) if name != OUTSIDE] or list(range(len(labels)))
            score = probs[..., entity].amax(-1)  # (B, S)
        score = score.masked_fill(~text, -1.0) if bool(text.any(1).all()) else score.masked_fill(mask == 0, -1.0)
        at = score.argmax(-1)  # first of equals
        pos = [r.index(int(a)) for r, a in zip(real, at)]
    else:
        pos = _positions(spec.position, [len(r) for r in real], [], "text")
        at = torch.tensor([r[p] for r, p in zip(real, pos)], device=mask.device)
    here = probs[torch.arange(b), at]  # (B, C)
    pred = here.argmax(-1)
    cls = pred.clone() if chosen is None else torch.tensor(chosen, device=pred.device)
    words = [token_names(loaded.tokenizer, [int(batch["input_ids"][e, a])])[0] for e, a in enumerate(at.tolist())]

    def pick(o, ex):
        return o.logits.float()[torch.arange(len(ex)), at[ex]]  # (n, C)

    return Target(
        score=lambda o, ex: pick(o, ex)[torch.arange(len(ex)), cls[ex]],
        prob=lambda o, ex: loaded.class_probs(pick(o, ex))[torch.arange(len(ex)), cls[ex]],
        rows=_one_hot(mask.shape, at), stack="decoder" if loaded.kind == "decoder" else "encoder",
        describe=[f"label {labels[c]} of token {w!r} (position {p})" for c, w, p in zip(cls.tolist(), words, pos)],
        prediction=[labels[p] for p in pred.tolist()],
        probability=here[torch.arange(b), cls].tolist(),
        index=cls.tolist(), labels=list(labels), probs=here.detach().cpu(),
    )


def context_positions(loaded, batch) -> list[list[int]]:
    """Per example, the batch positions of the context: the real text tokens after the first special token
    that follows the question ([CLS] question [SEP] context [SEP]; <s> q </s></s> c </s>)."""
    special = special_tokens(loaded, batch["input_ids"])
    found = []
    for e, positions in enumerate(real_positions(batch["attention_mask"])):
        kinds = [bool(special[e, q]) for q in positions]
        first = next((k for k, s in enumerate(kinds) if not s), len(kinds))  # the question's first token
        gap = next((k for k in range(first, len(kinds)) if kinds[k]), len(kinds))  # the separator after it
        found.append([positions[k] for k in range(gap, len(kinds)) if not kinds[k]])
        if not found[-1]:
            raise BadInput(f"input {e + 1} has no context; a question-answering model reads a question and a "
                           "context: give each input as 'QUESTION ||| CONTEXT'")
    return found


def best_span(start: torch.Tensor, end: torch.Tensor, context: list[int]) -> tuple[int, int]:
    """The answer span (first, last position) inside ``context`` with the highest start + end logit and at most
    MAX_ANSWER tokens, from one example's start and end logits (S,)."""
    idx = torch.tensor(context, device=start.device)
    pairs = start[idx][:, None] + end[idx][None, :]  # (N, N): start i, end j
    n = len(context)
    keep = torch.ones(n, n, dtype=torch.bool, device=start.device).triu().tril(MAX_ANSWER - 1)  # i <= j < i + MAX
    i, j = divmod(int(pairs.masked_fill(~keep, float("-inf")).flatten().argmax()), n)
    return context[i], context[j]


@TARGETS.register("answer-span")
def answer_span_target(loaded, batch, out, spec: TargetSpec) -> Target:
    """A question-answering model's start (or end) logit at one token (B,) from its start/end logits (B, S):
    by default at the predicted answer's first (last) token, or at --target-token; ``span`` explains the
    predicted span's start + end logits together."""
    end = "start" if spec.label is None else str(spec.label).strip().lower()
    if end not in ENDS:
        raise BadInput(f"unknown answer end {spec.label!r}; valid targets: {', '.join(ENDS)}")
    if end == "span" and spec.position is not None:
        raise BadInput("--target-token picks one token: use it with --target start or --target end, not span")
    mask, ids = batch["attention_mask"], batch["input_ids"]
    real = real_positions(mask)
    spans = [best_span(out.start_logits[e].float(), out.end_logits[e].float(), c)
             for e, c in enumerate(context_positions(loaded, batch))]
    dist = {k: _probs(getattr(out, f"{k}_logits"), mask) for k in ("start", "end")}  # (B, S) each
    span_p = [float(dist["start"][e, s] * dist["end"][e, t]) for e, (s, t) in enumerate(spans)]
    ats = {k: torch.tensor([span[i] for span in spans], device=mask.device) for i, k in enumerate(("start", "end"))}
    if spec.position is not None:
        pos = _positions(spec.position, [len(r) for r in real], [], "text")
        ats[end] = torch.tensor([r[p] for r, p in zip(real, pos)], device=mask.device)
    parts = ("start", "end") if end == "span" else (end,)

    def score(o, ex):
        return sum(getattr(o, f"{k}_logits").float()[torch.arange(len(ex)), ats[k][ex]] for k in parts)  # (n,)

    def prob(o, ex):
        found = [_probs(getattr(o, f"{k}_logits"), mask[ex])[torch.arange(len(ex)), ats[k][ex]] for k in parts]
        return found[0] * found[-1] if len(found) == 2 else found[0]  # (n,)

    def word(e: int, k: str) -> str:
        q = int(ats[k][e])
        return f"{token_names(loaded.tokenizer, [int(ids[e, q])])[0]!r} (position {real[e].index(q)})"

    answers = [loaded.tokenizer.decode(ids[e, s:t + 1].tolist(), skip_special_tokens=True).strip()
               for e, (s, t) in enumerate(spans)]
    b = len(real)
    return Target(
        score=score, prob=prob, rows=sum(_one_hot(mask.shape, ats[k]) for k in parts) / len(parts),
        stack="decoder" if loaded.kind == "decoder" else "encoder",
        describe=[f"answer {end} at {word(e, end)}" if end != "span" else
                  f"answer span from {word(e, 'start')} to {word(e, 'end')}" for e in range(b)],
        prediction=answers,
        probability=span_p if end == "span" else dist[end][torch.arange(b), ats[end]].tolist(),
        notes=[f"input {e + 1}: the predicted answer is {a!r} (positions {real[e].index(s)}-{real[e].index(t)}, "
               f"p = {q:.3g})" for e, (a, (s, t), q) in enumerate(zip(answers, spans, span_p))],
    )


def _probs(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(n, S') logits -> softmax over each example's real tokens (padding gets 0): ``mask`` (n, S >= S')."""
    logits = logits.float()
    return logits.masked_fill(mask[:, :logits.shape[1]] == 0, float("-inf")).softmax(-1)
