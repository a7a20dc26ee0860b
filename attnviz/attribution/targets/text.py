"""Targets of text models: a class label, the next token, a masked token, a seq2seq output token, and
the cosine similarity of a sentence embedding to a reference."""

from __future__ import annotations

import torch

from attnviz.attribution.targets import TARGETS, Target, TargetSpec, resolve_label
from attnviz.errors import BadInput
from attnviz.models.loaded import token_names
from attnviz.models.readable import is_cjk_char, style_of


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
    real = real_positions(mask)
    # An encoder classifies from its first token; a causal classifier from its last real one (either padding side).
    at = torch.tensor([r[-1] if loaded.kind == "decoder" else 0 for r in real], device=mask.device)
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


def real_positions(mask: torch.Tensor) -> list[list[int]]:
    """Per example, the batch positions of its real tokens (B lists): left or right padding alike."""
    return [torch.nonzero(row > 0).flatten().tolist() for row in mask]


def _positions(given: int | None, lengths: list[int], default: list[int], what: str) -> list[int]:
    """One position per example, counted over its real tokens: ``given`` (negative from the end) checked
    against each length."""
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


def _typed(loaded, text: str) -> list[int]:
    """Plain text as the model would continue an input with it: a word after a space-marking tokenizer's
    input gets its leading space (" Paris"), unless it is CJK or punctuation; the first spelling that is one
    token wins."""
    tok = loaded.tokenizer
    spaced = style_of(tok) != "text" and text[:1].isalnum() and not is_cjk_char(text[0])
    tries = [" " + text, text] if spaced else [text]
    encoded = [tok(t, add_special_tokens=False)["input_ids"] for t in tries]
    encoded = [ids for ids in encoded if ids]
    return next((ids for ids in encoded if len(ids) == 1), encoded[0] if encoded else [])


def spelled(loaded, text: str) -> list[int]:
    """Every token of plain ``text`` as the model would continue an input with it (" Eiffel Tower")."""
    tok = loaded.tokenizer
    spaced = style_of(tok) != "text" and text[:1].isalnum() and not is_cjk_char(text[0])
    ids = tok(" " + text if spaced else text, add_special_tokens=False, return_tensors=None)["input_ids"]
    return list(ids[0] if ids and isinstance(ids[0], list) else ids)  # a toy's tokenizer gives a batch of one


def _token_id(loaded, given: str | None, notes: list[str] | None = None) -> int | None:
    """--target as a token id: a vocabulary token ("ĠParis"), an id, or plain text (" Paris", "Paris") encoded
    as the model would continue the input; a text of several tokens is explained as its first, said in ``notes``."""
    if given is None:
        return None
    tok = loaded.tokenizer
    vocab = len(tok) if tok is not None else 0
    unk = getattr(tok, "unk_token_id", None)
    if tok is not None and style_of(tok) != "text" and given.strip():
        typed = _typed(loaded, given)  # "Paris" after an input is " Paris": text first where pieces are not text
        if len(typed) == 1 and typed[0] != unk:
            return _said(tok, given, typed, notes)
    as_token = tok.convert_tokens_to_ids([given])[0] if tok is not None else None
    if as_token is not None and as_token != unk:
        return as_token  # a token of the vocabulary ("3" on a character model) before an id
    if given.isdigit():
        if not 0 <= int(given) < vocab:
            raise BadInput(f"token id {given} is out of range; valid ids: 0-{vocab - 1}")
        return int(given)
    ids = _typed(loaded, given) if tok is not None and given.strip() else []
    if not ids or (unk is not None and unk in ids):
        raise BadInput(f"{given!r} is not text this model's vocabulary can spell; give a word, a token or an id "
                       f"0-{vocab - 1}")
    return _said(tok, given, ids, notes)


def _said(tok, given: str, ids: list[int], notes: list[str] | None) -> int:
    """The first of ``ids``, with a note of which tokens ``given`` became."""
    if notes is not None:
        shown = " ".join(repr(t) for t in token_names(tok, ids))
        more = (f"; it is {len(ids)} tokens, so the first is explained (--target-span explains them all)"
                if len(ids) > 1 else "")
        notes.append(f"--target {given!r} became {shown}{more}")
    return ids[0]


def _token_target(loaded, logits, rows_at: list[int], stack: str, chosen: int | None, words) -> Target:
    """Shared by the LM targets: the logit of one vocabulary token at one batch position per example;
    ``words(example, token label)`` says what is explained."""
    b = logits.shape[0]
    at = torch.tensor(rows_at, device=logits.device)
    here = logits.float()[torch.arange(b), at]  # (B, V)
    pred = here.argmax(-1)
    if chosen is None:
        tok = pred.clone()
    else:  # one token for every example, or one each
        tok = chosen.to(pred.device) if torch.is_tensor(chosen) else torch.full_like(pred, chosen)
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
        describe=[words(e, name(t)) for e, t in enumerate(tok.tolist())],
        prediction=[name(p) for p in pred.tolist()],
        probability=here.softmax(-1)[torch.arange(b), tok].tolist(),
    )


@TARGETS.register("next-token")
def next_token_target(loaded, batch, out, spec: TargetSpec) -> Target:
    """A causal LM's logit of the next token after the last real one (or after --target-token)."""
    real = real_positions(batch["attention_mask"])
    lengths = [len(r) for r in real]
    at = _positions(spec.position, lengths, [n - 1 for n in lengths], "text")  # over each input's real tokens
    rows_at = [r[p] for r, p in zip(real, at)]
    # each label read in its input, so that a byte piece finishing a character reads "+影", not "�"
    after = [token_names(loaded.tokenizer, [int(batch["input_ids"][e, q]) for q in r])[p]
             for e, (r, p) in enumerate(zip(real, at))]
    notes: list[str] = []
    chosen = _token_id(loaded, spec.label, notes)

    def words(e: int, label: str) -> str:
        return f"next token {label!r} after {after[e]!r} (input position {at[e]})"

    target = _token_target(loaded, out.logits, rows_at, "decoder", chosen, words)
    target.notes = notes
    return target


@TARGETS.register("masked-token")
def masked_token_target(loaded, batch, out, spec: TargetSpec) -> Target:
    """A masked LM's logit of one token at the [MASK] (or at --target-token)."""
    real = real_positions(batch["attention_mask"])
    mask_id = loaded.tokenizer.mask_token_id
    found = [[k for k, q in enumerate(r) if int(batch["input_ids"][e, q]) == mask_id] for e, r in enumerate(real)]
    if spec.position is None and not all(found):
        raise BadInput(f"every input needs a {loaded.tokenizer.mask_token} token, or pass --target-token POS")
    at = _positions(spec.position, [len(r) for r in real], [f[0] for f in found] if all(found) else [], "text")
    notes: list[str] = []
    chosen = _token_id(loaded, spec.label, notes)
    target = _token_target(loaded, out.logits, [r[p] for r, p in zip(real, at)], _self_stack(loaded), chosen,
                           lambda e, label: f"token {label!r} at position {at[e]}")
    target.notes = notes
    return target


@TARGETS.register("seq2seq-token")
def output_token_target(loaded, batch, out, spec: TargetSpec) -> Target:
    """A sequence-to-sequence model's logit of one output token: by default the first that is not a special
    token, and the token the output holds there (the model's own answer, or a given --answer)."""
    dmask, ids = batch["decoder_attention_mask"], batch["decoder_input_ids"]
    # Position t of the decoder input predicts output token t + 1; the last one predicts nothing new.
    lengths = [max(int(n) - 1, 1) for n in dmask.long().sum(1).tolist()]
    specials = set(getattr(loaded.tokenizer, "all_special_ids", []) or [])
    first = [next((t for t in range(n) if int(ids[e, t + 1]) not in specials), 0) if ids.shape[1] > 1 else 0
             for e, n in enumerate(lengths)]
    at = _positions(spec.position, lengths, first, "output")
    notes: list[str] = []
    chosen = _token_id(loaded, spec.label, notes)
    if chosen is None and ids.shape[1] > 1:  # the token the output holds after each explained position
        chosen = ids[torch.arange(len(at)), torch.tensor(at, device=ids.device) + 1]
    target = _token_target(loaded, out.logits, at, "cross", chosen,
                           lambda e, label: f"output token {label!r} at position {at[e]}")
    target.notes = notes
    return target


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
