"""What is explained: a registry of targets, one per model task.

A target turns the model's output into one differentiable score per example (a logit, or the cosine
similarity of a sentence embedding), a probability-like value for faithfulness curves, and the output
positions whose attention rows explain it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from attnviz.errors import BadInput
from attnviz.models.loaded import token_names
from attnviz.registry import Registry

# task -> fn(loaded, ctx_batch, out, options: TargetOptions) -> Target
TARGETS: Registry[Callable] = Registry("target task")
# Which option each task takes, for messages that say what fits.
FITS = {
    "classification": "--target LABEL|INDEX",
    "causal-lm": "--target-token POS (and optionally --target TOKEN)",
    "masked-lm": "--target-token POS of a [MASK] (and optionally --target TOKEN)",
    "embedding": '--reference "TEXT"',
    "seq2seq": "--target-token POS in the output (and optionally --target TOKEN)",
}


@dataclass(frozen=True)
class TargetOptions:
    label: str | None = None  # --target: a class name or index, or a vocabulary token/id for LMs
    position: int | None = None  # --target-token: a token position (negative counts from the end)
    reference: str | None = None  # --reference: text whose embedding the input is compared with


@dataclass
class Target:
    score: Callable  # (output, example index (n,)) -> (n,) differentiable score
    prob: Callable  # (output, example index (n,)) -> (n,) probability (or cosine) for curves
    rows: torch.Tensor  # (B, Q) weights of the output positions whose relevance rows explain the target
    stack: str  # attention stack those rows index: encoder | decoder | cross (rows over decoder positions)
    describe: list[str]  # per example, e.g. "label positive"
    prediction: list[str]  # per example, the model's own output
    probability: list[float]  # per example, of the target


def refuse(task: str, given: str, why: str) -> None:
    raise BadInput(f"{given} does not fit this model ({why}); for a {task} model use {FITS[task]}")


def check_options(task: str, opts: TargetOptions) -> None:
    if task not in FITS:
        raise BadInput(f"attribution explains {', '.join(FITS)} models, not {task!r}")
    if opts.reference is not None and task != "embedding":
        refuse(task, "--reference", "it is not a sentence encoder")
    if opts.position is not None and task in ("classification", "embedding"):
        refuse(task, "--target-token", "it does not predict tokens")
    if opts.label is not None and task == "embedding":
        refuse(task, "--target", "a sentence encoder has no labels")


def build_target(loaded, batch: dict, mask: torch.Tensor, out, opts: TargetOptions) -> Target:
    check_options(loaded.task, opts)
    return TARGETS.get(loaded.task)(loaded, batch, mask, out, opts)


def _label_index(labels: list[str], given: str) -> int:
    choices = ", ".join(f"{i} {name}" for i, name in enumerate(labels))
    if given.lstrip("-").isdigit():
        i = int(given)
        if not 0 <= i < len(labels):
            raise BadInput(f"label {i} is out of range; valid labels: {choices}")
        return i
    if given in labels:
        return labels.index(given)
    raise BadInput(f"unknown label {given!r}; valid labels: {choices}")


@TARGETS.register("classification")
def label_target(loaded, batch, mask, out, opts: TargetOptions) -> Target:
    logits = out.logits.float()  # (B, C)
    labels = loaded.labels or [str(i) for i in range(logits.shape[-1])]
    pred = logits.argmax(-1)
    cls = pred.clone() if opts.label is None else torch.full_like(pred, _label_index(labels, opts.label))
    probs = loaded.class_probs(logits)
    rows = torch.zeros(mask.shape, device=mask.device)
    last = mask.long().sum(1) - 1
    # An encoder classifies from its first token; a causal classifier from its last real one.
    at = last if loaded.kind == "decoder" else torch.zeros_like(last)
    rows[torch.arange(len(rows)), at] = 1.0
    return Target(
        score=lambda o, ex: o.logits.float()[torch.arange(len(ex)), cls[ex]],
        prob=lambda o, ex: loaded.class_probs(o.logits)[torch.arange(len(ex)), cls[ex]],
        rows=rows, stack=_self_stack(loaded),
        describe=[f"label {labels[c]}" for c in cls.tolist()],
        prediction=[labels[p] for p in pred.tolist()],
        probability=probs[torch.arange(len(cls)), cls].tolist(),
    )


def _self_stack(loaded) -> str:
    return "decoder" if loaded.kind == "decoder" else "encoder"


def _positions(given: int | None, lengths: list[int], default: list[int], what: str) -> list[int]:
    """One position per example: ``given`` (negative from the end) checked against each length."""
    if given is None:
        return default
    out = []
    for n in lengths:
        p = given + n if given < 0 else given
        if not 0 <= p < n:
            raise BadInput(f"--target-token {given} is past the {what} ({n} tokens); valid positions: 0-{n - 1} "
                           f"or -{n}--1")
        out.append(p)
    return out


def _token_id(loaded, given: str | None) -> int | None:
    if given is None:
        return None
    vocab = len(loaded.tokenizer) if loaded.tokenizer is not None else 0
    as_token = loaded.tokenizer.convert_tokens_to_ids([given])[0] if loaded.tokenizer is not None else None
    if as_token is not None and as_token != getattr(loaded.tokenizer, "unk_token_id", None):
        return as_token  # a token of the vocabulary ("3" on a character model) before an id
    if given.isdigit():
        if not 0 <= int(given) < vocab:
            raise BadInput(f"token id {given} is out of range; valid ids: 0-{vocab - 1}")
        return int(given)
    ids = loaded.tokenizer.convert_tokens_to_ids([given])
    if not ids or ids[0] is None or ids[0] == getattr(loaded.tokenizer, "unk_token_id", None):
        raise BadInput(f"{given!r} is not one token of this model's vocabulary; give a token or an id 0-{vocab - 1}")
    return ids[0]


def _token_target(loaded, logits, rows_at: list[int], stack: str, chosen: int | None, verb: str) -> Target:
    """Shared by the LM targets: the logit of one vocabulary token at one position per example."""
    b = logits.shape[0]
    at = torch.tensor(rows_at, device=logits.device)
    here = logits.float()[torch.arange(b), at]  # (B, V)
    pred = here.argmax(-1)
    tok = pred.clone() if chosen is None else torch.full_like(pred, chosen)
    rows = torch.zeros(b, logits.shape[1], device=logits.device)
    rows[torch.arange(b), at] = 1.0

    def name(token_id: int) -> str:
        return token_names(loaded.tokenizer, [token_id])[0]

    def pick(o, ex):
        return o.logits.float()[torch.arange(len(ex)), at[ex]]  # (n, V)

    return Target(
        score=lambda o, ex: pick(o, ex)[torch.arange(len(ex)), tok[ex]],
        prob=lambda o, ex: pick(o, ex).softmax(-1)[torch.arange(len(ex)), tok[ex]],
        rows=rows, stack=stack,
        describe=[f"{verb} {name(t)!r} at position {p}" for t, p in zip(tok.tolist(), rows_at)],
        prediction=[name(p) for p in pred.tolist()],
        probability=here.softmax(-1)[torch.arange(b), tok].tolist(),
    )


@TARGETS.register("causal-lm")
def next_token_target(loaded, batch, mask, out, opts: TargetOptions) -> Target:
    lengths = mask.long().sum(1).tolist()
    at = _positions(opts.position, lengths, [n - 1 for n in lengths], "text")
    return _token_target(loaded, out.logits, at, "decoder", _token_id(loaded, opts.label), "next token after")


@TARGETS.register("masked-lm")
def masked_token_target(loaded, batch, mask, out, opts: TargetOptions) -> Target:
    lengths = mask.long().sum(1).tolist()
    mask_id = loaded.tokenizer.mask_token_id
    found = [(row == mask_id).nonzero().flatten().tolist() for row in batch["input_ids"]]
    if opts.position is None and not all(found):
        raise BadInput(f"every input needs a {loaded.tokenizer.mask_token} token, or pass --target-token POS")
    at = _positions(opts.position, lengths, [f[0] for f in found] if all(found) else [], "text")
    return _token_target(loaded, out.logits, at, _self_stack(loaded), _token_id(loaded, opts.label), "token")


@TARGETS.register("seq2seq")
def output_token_target(loaded, batch, mask, out, opts: TargetOptions) -> Target:
    dmask = batch["decoder_attention_mask"]
    # Position t of the decoder input predicts output token t + 1; the last one predicts nothing new.
    lengths = [max(int(n) - 1, 1) for n in dmask.long().sum(1).tolist()]
    at = _positions(opts.position, lengths, [0] * len(lengths), "output")
    return _token_target(loaded, out.logits, at, "cross", _token_id(loaded, opts.label), "output token")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the real tokens' states, as sentence-transformers pools all-MiniLM-L6-v2: (n, S, D) -> (n, D)."""
    m = mask.to(hidden.dtype)[..., None]  # (n, S, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


@TARGETS.register("embedding")
def similarity_target(loaded, batch, mask, out, opts: TargetOptions) -> Target:
    if opts.reference is None or not opts.reference.strip():
        raise BadInput('a sentence encoder is explained by its similarity to a reference: pass --reference "TEXT"')
    ref_enc = loaded.encode([opts.reference])
    with torch.no_grad():
        ref_out = loaded.model(**{k: v for k, v in ref_enc.batch.items()})
    ref = mean_pool(ref_out.last_hidden_state.float(), ref_enc.batch["attention_mask"])[0]  # (D,)
    keep = mask.to(ref.device)

    def cosine(o, ex):
        hidden = o.last_hidden_state.float()  # (n, S' <= S, D): trailing padding may be cut
        pooled = mean_pool(hidden, keep[ex, :hidden.shape[1]])  # (n, D)
        return torch.nn.functional.cosine_similarity(pooled, ref[None], dim=-1)

    now = cosine(out, torch.arange(mask.shape[0], device=mask.device)).tolist()
    rows = keep.float() / keep.float().sum(1, keepdim=True)  # mean pooling reads every real row equally
    short = opts.reference if len(opts.reference) <= 40 else opts.reference[:39] + "…"
    return Target(score=cosine, prob=cosine, rows=rows, stack="encoder",
                  describe=[f"cosine similarity to {short!r}"] * len(now),
                  prediction=[f"cosine {c:.3f}" for c in now], probability=now)
