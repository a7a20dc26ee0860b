"""Targets of text models: a class label, the next token, a masked token, a seq2seq output token, and
the cosine similarity of a sentence embedding to a reference."""

from __future__ import annotations

import torch

from attnviz.attribution.targets import TARGETS, Target, TargetSpec, resolve_label
from attnviz.errors import BadInput
from attnviz.models.loaded import token_names


@TARGETS.register("label")
def label_target(loaded, batch, out, spec: TargetSpec) -> Target:
    """A classifier's logit of one class (default: each example's prediction)."""
    mask = batch["attention_mask"]
    logits = out.logits.float()  # (B, C)
    labels = loaded.labels or [str(i) for i in range(logits.shape[-1])]
    pred = logits.argmax(-1)
    cls = pred.clone() if spec.label is None else torch.tensor(resolve_label(spec.label, labels, pred.tolist()),
                                                                  device=pred.device)
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
        index=cls.tolist(), labels=list(labels), probs=probs.detach().cpu(),
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


@TARGETS.register("next-token")
def next_token_target(loaded, batch, out, spec: TargetSpec) -> Target:
    """A causal LM's logit of the next token after the last real one (or after --target-token)."""
    mask = batch["attention_mask"]
    lengths = mask.long().sum(1).tolist()
    at = _positions(spec.position, lengths, [n - 1 for n in lengths], "text")
    return _token_target(loaded, out.logits, at, "decoder", _token_id(loaded, spec.label), "next token after")


@TARGETS.register("masked-token")
def masked_token_target(loaded, batch, out, spec: TargetSpec) -> Target:
    """A masked LM's logit of one token at the [MASK] (or at --target-token)."""
    mask = batch["attention_mask"]
    lengths = mask.long().sum(1).tolist()
    mask_id = loaded.tokenizer.mask_token_id
    found = [(row == mask_id).nonzero().flatten().tolist() for row in batch["input_ids"]]
    if spec.position is None and not all(found):
        raise BadInput(f"every input needs a {loaded.tokenizer.mask_token} token, or pass --target-token POS")
    at = _positions(spec.position, lengths, [f[0] for f in found] if all(found) else [], "text")
    return _token_target(loaded, out.logits, at, _self_stack(loaded), _token_id(loaded, spec.label), "token")


@TARGETS.register("seq2seq-token")
def output_token_target(loaded, batch, out, spec: TargetSpec) -> Target:
    """A sequence-to-sequence model's logit of one output token (default: the first)."""
    dmask = batch["decoder_attention_mask"]
    # Position t of the decoder input predicts output token t + 1; the last one predicts nothing new.
    lengths = [max(int(n) - 1, 1) for n in dmask.long().sum(1).tolist()]
    at = _positions(spec.position, lengths, [0] * len(lengths), "output")
    return _token_target(loaded, out.logits, at, "cross", _token_id(loaded, spec.label), "output token")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the real tokens' states, as sentence-transformers pools all-MiniLM-L6-v2: (n, S, D) -> (n, D)."""
    m = mask.to(hidden.dtype)[..., None]  # (n, S, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


@TARGETS.register("cosine")
def similarity_target(loaded, batch, out, spec: TargetSpec) -> Target:
    """A sentence encoder's cosine similarity (mean-pooled) to the embedding of a reference text."""
    mask = batch["attention_mask"]
    if spec.reference is None or not spec.reference.strip():
        raise BadInput('a sentence encoder is explained by its similarity to a reference: pass --reference "TEXT"')
    ref_enc = loaded.encode([spec.reference])
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
    short = spec.reference if len(spec.reference) <= 40 else spec.reference[:39] + "…"
    return Target(score=cosine, prob=cosine, rows=rows, stack="encoder",
                  describe=[f"cosine similarity to {short!r}"] * len(now),
                  prediction=[f"cosine {c:.3f}" for c in now], probability=now)
