"""Decoding: prompts -> answers of a causal language model, or a given answer (forced decoding).

Hugging Face models decode with their own ``generate`` (key-value cache, the model's generation_config,
a batch left-padded so that every prompt ends where generation starts); the toys, which have no cache,
decode step by step on the growing right-padded batch. Both stop a row at its end-of-sequence token,
which is not part of the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from attnviz.errors import BadInput


@dataclass(frozen=True)
class Decoding:
    """How answers are produced: greedy by default; ``sample`` draws with ``temperature`` and nucleus ``top_p``
    (Holtzman et al. 2019, arXiv:1904.09751) from a generator seeded with ``seed``."""

    max_new_tokens: int = 20
    sample: bool = False
    seed: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self):
        n = self.max_new_tokens
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise BadInput(f"--max-new-tokens must be a whole number of at least 1, not {n!r}")
        if not self.temperature > 0:
            raise BadInput(f"--temperature must be more than 0, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise BadInput(f"--top-p must be in (0, 1], not {self.top_p}")
        if self.seed is not None and self.seed < 0:
            raise BadInput(f"--seed must be >= 0, not {self.seed}")


@dataclass
class Prompts:
    """Encoded prompts: token ids per example (special tokens and any chat template included), unpadded."""

    ids: list[list[int]]
    notes: list[str] = field(default_factory=list)


def check_causal(loaded) -> None:
    """Only a causal language model generates; anything else is refused (exit 2) naming what fits."""
    if loaded.task != "causal-lm":
        raise BadInput(f"generate needs a causal language model (decoder-only, e.g. toy-induction, toy-decoder or "
                       f"a GPT-2/Llama folder); {loaded.name} is a {loaded.kind} {loaded.task} model: "
                       "use `attnviz attribute` for it")


def encode_prompts(loaded, prompts: list[str], *, chat: bool = False) -> Prompts:
    """Each prompt's token ids as the model reads it; ``chat`` applies the tokenizer's chat template (with the
    generation prompt) where it has one, and says so where it has none."""
    from attnviz.models.loaded import check_texts

    check_texts(prompts)
    tok, notes = loaded.tokenizer, []
    if chat and getattr(tok, "chat_template", None):
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                 for p in prompts]
        ids = [list(tok(t, add_special_tokens=False, return_tensors=None)["input_ids"]) for t in texts]
    else:
        if chat:
            notes.append(f"{loaded.name} has no chat template: the prompts are used as they are")
        ids = [list(tok(p, return_tensors=None)["input_ids"]) for p in prompts]
        ids = [row[0] if row and isinstance(row[0], list) else row for row in ids]
    for i, row in enumerate(ids):
        if len(row) >= loaded.max_length:
            raise BadInput(f"prompt {i + 1} is {len(row)} tokens; {loaded.name} reads at most {loaded.max_length}, "
                           "with room for the answer")
    return Prompts(ids, notes)


def encode_answer(loaded, text: str, what: str = "--answer") -> list[int]:
    """A given answer's token ids, without special tokens (it continues the prompt)."""
    ids = list(loaded.tokenizer(text, add_special_tokens=False, return_tensors=None)["input_ids"])
    ids = ids[0] if ids and isinstance(ids[0], list) else ids
    if not ids:
        raise BadInput(f"{what} {text!r} is no token of {loaded.name}: give text the tokenizer reads")
    return ids


def pad_id(loaded) -> int:
    tok = loaded.tokenizer
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(tok, name, None)
        if value is not None:
            return int(value)
    return 0


def padded(rows: list[list[int]], fill: int, left: bool, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, S), mask (B, S)) of ``rows`` padded on the left or the right."""
    width = max(len(r) for r in rows)
    pads = [width - len(r) for r in rows]
    ids = [[fill] * n + r if left else r + [fill] * n for r, n in zip(rows, pads)]
    mask = [[0] * n + [1] * len(r) if left else [1] * len(r) + [0] * n for r, n in zip(rows, pads)]
    return torch.tensor(ids, dtype=torch.long, device=device), torch.tensor(mask, dtype=torch.long, device=device)


def generate(loaded, prompts: Prompts, decoding: Decoding) -> list[list[int]]:
    """The answer's token ids per prompt: at most ``max_new_tokens``, cut before the end-of-sequence token."""
    check_causal(loaded)
    room = loaded.max_length - max(len(r) for r in prompts.ids)
    steps = min(decoding.max_new_tokens, room)
    if steps < 1:
        raise BadInput(f"no room to generate: the longest prompt fills {loaded.name}'s {loaded.max_length} tokens")
    devices = [loaded.device] if loaded.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # a seed given here never moves the caller's random stream
        if decoding.seed is not None:
            torch.manual_seed(decoding.seed)
        if callable(getattr(loaded.model, "generate", None)):
            rows = _hf_generate(loaded, prompts.ids, decoding, steps)
        else:
            rows = _stepwise(loaded, prompts.ids, decoding, steps)
    eos = getattr(loaded.tokenizer, "eos_token_id", None)
    return [row[: row.index(eos)] if eos in row else row for row in rows]


def _hf_generate(loaded, prompts: list[list[int]], decoding: Decoding, steps: int) -> list[list[int]]:
    """The model's own ``generate`` on a left-padded batch, its generation_config overridden by ``decoding``."""
    ids, mask = padded(prompts, pad_id(loaded), True, loaded.device)
    sampling = dict(do_sample=True, temperature=decoding.temperature, top_p=decoding.top_p, top_k=0) \
        if decoding.sample else dict(do_sample=False, temperature=None, top_p=None, top_k=None)
    with torch.inference_mode():
        out = loaded.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=steps, min_new_tokens=0,
                                    pad_token_id=pad_id(loaded), use_cache=True, num_beams=1, **sampling)
    new = out[:, ids.shape[1]:].tolist()  # (B, T): rows that stopped early are padded after their eos
    return [_until_pad(row, loaded) for row in new]


def _until_pad(row: list[int], loaded) -> list[int]:
    eos = getattr(loaded.tokenizer, "eos_token_id", None)
    return row[: row.index(eos) + 1] if eos is not None and eos in row else row


def _stepwise(loaded, prompts: list[list[int]], decoding: Decoding, steps: int) -> list[list[int]]:
    """Models without ``generate`` (the toys): one forward of the right-padded batch per new token."""
    rows, done = [list(p) for p in prompts], [False] * len(prompts)
    eos = getattr(loaded.tokenizer, "eos_token_id", None)
    with torch.inference_mode():
        for _ in range(steps):
            ids, mask = padded(rows, pad_id(loaded), False, loaded.device)
            logits = loaded.model(input_ids=ids, attention_mask=mask).logits  # (B, S, V)
            last = mask.sum(1) - 1  # each row's last real position
            chosen = pick(logits[torch.arange(len(rows)), last].float(), decoding).tolist()  # (B,)
            for i, t in enumerate(chosen):
                if not done[i]:
                    rows[i].append(t)
                    done[i] = t == eos
            if all(done):
                break
    return [r[len(p):] for r, p in zip(rows, prompts)]


def pick(logits: torch.Tensor, decoding: Decoding) -> torch.Tensor:
    """The next token per row of ``logits`` (B, V): argmax, or a draw from the temperature-scaled nucleus."""
    if not decoding.sample:
        return logits.argmax(-1)
    probs = (logits / decoding.temperature).softmax(-1)  # (B, V)
    ordered, order = probs.sort(-1, descending=True)
    # Keep the smallest head of the distribution whose mass reaches top_p (the first token always stays).
    drop = ordered.cumsum(-1) - ordered >= decoding.top_p
    ordered = ordered.masked_fill(drop, 0.0)
    draw = torch.multinomial(ordered, 1)[:, 0]  # (B,)
    return order.gather(-1, draw[:, None])[:, 0]
