"""What an encoder-decoder's decoder reads: the model's own answer or a given one.

A Hugging Face model answers with its own ``generate`` (its key-value cache and its generation_config:
decoder start, forced BOS or language tokens, beams, length rules), at most ``max_new_tokens`` new tokens; a
row that reaches the limit before its end token is said to be cut. A toy, which has no ``generate``, decodes
greedily step by step. A given answer (``--answer``) is teacher-forced: the decoder reads the start token, the
answer's tokens as the tokenizer encodes a target text, and its end token. Either way the whole output is then
fed back once, so that every layer's attention over it is captured.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnviz.errors import BadInput

MAX_NEW_TOKENS = 64


@dataclass(frozen=True)
class Answers:
    """How an encoder-decoder's output is made: decoded by the model, at most ``max_new_tokens`` new tokens (None:
    not asked for, MAX_NEW_TOKENS), or ``given`` (one text for every input, or one per input) and teacher-forced."""

    max_new_tokens: int | None = None
    given: tuple[str, ...] = ()

    @property
    def limit(self) -> int:
        return MAX_NEW_TOKENS if self.max_new_tokens is None else self.max_new_tokens

    def __post_init__(self):
        n = self.max_new_tokens
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise BadInput(f"--max-new-tokens must be a whole number of at least 1, not {n!r}")
        if isinstance(self.given, str):
            object.__setattr__(self, "given", (self.given,))
        for text in self.given:
            if not isinstance(text, str) or not text.strip():
                raise BadInput("--answer is empty: give the output text to explain")

    def per_input(self, count: int) -> list[str] | None:
        """One given answer per input (None: the model answers), refused when the counts do not fit."""
        if not self.given:
            return None
        if len(self.given) == 1:
            return list(self.given) * count
        if len(self.given) != count:
            raise BadInput(f"{len(self.given)} answers for {count} inputs: give one --answer for all, or one each")
        return list(self.given)


def check_answers(loaded, answers: Answers) -> None:
    """A given answer or a length limit is for an encoder-decoder; other models are refused with what fits."""
    if loaded.kind != "encoder-decoder" and (answers.given or answers.max_new_tokens is not None):
        what = "--answer" if answers.given else "--max-new-tokens"
        fits = ("`attnviz generate` explains a causal LM's answer (it takes --answer and --max-new-tokens)"
                if loaded.task == "causal-lm" else "this model reads its input alone")
        raise BadInput(f"{what} is for encoder-decoder models (T5, BART, ...); {loaded.name} is "
                       f"{'an' if loaded.kind[0] in 'aeiou' else 'a'} {loaded.kind} model: {fits}")


def decode(loaded, batch: dict, answers: Answers) -> tuple[torch.Tensor, list[str]]:
    """(decoder ids (B, T) from the start token through each row's end token, padded after it; notes)."""
    rows = batch["input_ids"].shape[0]
    given = answers.per_input(rows)
    if given is not None:
        return _forced(loaded, given), []
    steps = min(answers.limit, loaded.max_length - 1)  # the decoder's positions hold the start too
    if callable(getattr(loaded.model, "generate", None)):
        ids = _generate(loaded, batch, steps)
    else:
        ids = _stepwise(loaded, batch, steps)
    eos = loaded.meta.get("eos")
    cut = [i + 1 for i, row in enumerate(ids.tolist()) if eos not in row[1:]]
    if not cut or ids.shape[1] - 1 < steps:
        return ids, []
    more = "--max-new-tokens allows more" if steps == answers.limit else \
        f"{loaded.name} has {loaded.max_length} positions"
    # one note per input, "input N ...", as every per-input note: a batch report gives each item those naming it
    return ids, [f"input {i} has its output cut at {steps} new tokens before its end token; {more}" for i in cut]


def decoder_mask(ids: torch.Tensor, eos) -> torch.Tensor:
    """(B, T) 1 through each row's first end token (the start token is never an end), 0 after it."""
    is_eos = (ids == eos).long() if eos is not None else torch.zeros_like(ids)
    is_eos[:, 0] = 0
    return ((is_eos.cumsum(1) - is_eos) == 0).long()


def _generate(loaded, batch: dict, max_new: int) -> torch.Tensor:
    """The model's own ``generate``, as its generation_config says, with a fixed seed (a config may sample)."""
    devices = [loaded.device] if loaded.device.type == "cuda" else []
    kwargs = {k: batch[k] for k in ("input_ids", "attention_mask") if k in batch}
    with torch.random.fork_rng(devices=devices), torch.inference_mode():
        torch.manual_seed(0)
        out = loaded.model.generate(**kwargs, max_new_tokens=max_new, use_cache=True)
    return out if not hasattr(out, "sequences") else out.sequences


def _stepwise(loaded, batch: dict, steps: int) -> torch.Tensor:
    """Greedy decoding without a cache (the toys)."""
    start, eos = loaded.meta.get("decoder_start"), loaded.meta.get("eos")
    ids = torch.full((batch["input_ids"].shape[0], 1), start, dtype=torch.long, device=loaded.device)
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=loaded.device)
    with torch.inference_mode():
        for _ in range(steps):
            logits = loaded.model(**batch, decoder_input_ids=ids).logits[:, -1]  # (B, V)
            nxt = logits.argmax(-1).masked_fill(done, loaded.meta.get("pad", 0))
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            done |= nxt == eos
            if bool(done.all()):
                break
    return ids


def _forced(loaded, given: list[str]) -> torch.Tensor:
    """The start token, each answer's tokens as a target text, and the end token (once), right-padded."""
    tok, eos = loaded.tokenizer, loaded.meta.get("eos")
    start = int(_start_token(loaded))
    rows = []
    for i, text in enumerate(given):
        ids = tok(text_target=text, return_tensors=None)["input_ids"] if _takes_targets(tok) else \
            tok([text], add_special_tokens=False, padding=False, return_tensors=None)["input_ids"]
        ids = ids.flatten().tolist() if torch.is_tensor(ids) else ids[0] if ids and isinstance(ids[0], list) else ids
        specials = set(getattr(tok, "all_special_ids", [])) - {eos}
        real = [t for t in ids if t not in specials]
        if not real or real == [eos]:
            raise BadInput(f"--answer {text!r} is no token of {loaded.name}: give text its tokenizer reads")
        forced = getattr(getattr(loaded.model, "generation_config", None), "forced_bos_token_id", None)
        head = [start] + ([int(forced)] if forced is not None else [])
        body = ids if ids[-1] == eos or eos is None else ids + [eos]
        body = body if forced is None or body[0] != forced else body[1:]
        if len(head) + len(body) > loaded.max_length:
            raise BadInput(f"--answer {i + 1} is {len(body)} tokens; {loaded.name} reads at most {loaded.max_length}")
        rows.append(head + body)
    width = max(len(r) for r in rows)
    pad = loaded.meta.get("pad", 0)
    return torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long, device=loaded.device)


def _start_token(loaded) -> int:
    config = getattr(loaded.model, "generation_config", None)
    start = getattr(config, "decoder_start_token_id", None)
    return start if isinstance(start, int) else loaded.meta.get("decoder_start") or 0


def _takes_targets(tok) -> bool:
    try:
        tok(text_target="a", return_tensors=None)
        return True
    except TypeError:  # a toy's character tokenizer reads plain text only
        return False
