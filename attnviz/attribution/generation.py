"""Explain every token a causal LM generates, back to its prompt (and the answer before it).

``attribute_generation`` decodes (or takes a given answer), runs one teacher-forced forward pass over
prompt + answer for the step scores (probability, entropy, a contrastive difference) and the
attention-based methods; the input-gradient methods share one forward pass over every step (``stepgrads``)
and the others run on rows of several steps at a time (``steprows``). The result holds, per generated
token, a score for every earlier position.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch

from attnviz.attribution.forced import ATTENTION_ONLY, attention_scores, forced_batch, forward, keep_for, step_scores
from attnviz.attribution.methods import METHODS
from attnviz.attribution.stepgrads import SHARED, shared_scores
from attnviz.attribution.steprows import gradient_scores
from attnviz.attribution.tokens import method_options
from attnviz.errors import BadInput
from attnviz.models.generate import (Decoding, check_causal, encode_answer, encode_prompts, generate, pad_id)
from attnviz.models.loaded import token_names
from attnviz.recording.plan import KEEPS

GENERATION_METHODS = ("attention", "rollout", "attn-grad", "grad-rollout", "saliency", "grad-x-input",
                      "integrated-gradients", "occlusion")
DEFAULT_METHODS = ("attention", "attn-grad", "grad-x-input")


@dataclass(frozen=True)
class GenerationConfig:
    """What to explain and how, checked when built (before any model runs).

    ``answer``: explain this answer instead of generating one; ``contrast``: an alternative answer whose
    probabilities are compared step by step; ``span`` (first, last): answer tokens explained as one target
    (counted from 0, both included); ``keep``: full attention maps, statistics, or auto (what fits).
    """

    methods: tuple[str, ...] = DEFAULT_METHODS
    options: Mapping = field(default_factory=dict)  # method -> typed options
    answer: str | None = None
    decoding: Decoding = Decoding()
    chat: bool = False
    contrast: str | None = None
    span: tuple[int, int] | None = None
    keep: str = "auto"
    chunk: int = 32

    def __post_init__(self):
        if not self.methods:
            raise BadInput(f"no method given; generate explains with {', '.join(GENERATION_METHODS)}")
        for m in self.methods:
            METHODS.get(m)  # an unknown name lists the known ones
            if m not in GENERATION_METHODS:
                raise BadInput(f"{m} does not explain generated tokens; choose from {', '.join(GENERATION_METHODS)}")
        object.__setattr__(self, "options", method_options(list(self.methods), self.options))
        if self.span is not None and not (len(self.span) == 2 and 0 <= self.span[0] <= self.span[1]):
            raise BadInput(f"--target-span must be FIRST-LAST with 0 <= FIRST <= LAST, not {self.span!r}")
        if self.keep not in KEEPS:
            raise BadInput(f"--keep must be one of {', '.join(KEEPS)}, not {self.keep!r}")
        if self.chunk < 1:
            raise BadInput(f"chunk must be >= 1, not {self.chunk}")
        for name in ("answer", "contrast"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise BadInput(f"--{name} is empty")


@dataclass
class GeneratedAttribution:
    """One prompt's answer, explained. ``tokens``: the prompt's tokens, then the answer's; ``steps``: one dict
    per generated token (or one for a target span): ``token``, ``position`` (its index in ``tokens``),
    ``probability``, ``entropy`` (nats) and, where asked, ``contrast``, ``span`` and ``completeness_gap``;
    ``scores[method]``: per step, a float32 array of one score per position 0 .. position - 1 (the file
    format's lists come from ``to_json``: a long prompt's rows as Python floats would take 8x the memory)."""

    model: str
    prompt: str
    tokens: list[str]
    prompt_length: int
    steps: list[dict]
    scores: dict[str, list[np.ndarray]]
    params: dict = field(default_factory=dict)  # method -> the options it ran with
    notes: list[str] = field(default_factory=list)

    @property
    def answer(self) -> list[str]:
        return self.tokens[self.prompt_length:]

    def to_json(self) -> dict:
        """Exactly the keys of the file format: model, prompt, tokens, prompt_length, steps, scores."""
        return {"model": self.model, "prompt": self.prompt, "tokens": self.tokens,
                "prompt_length": self.prompt_length, "steps": self.steps,
                "scores": {m: [row.tolist() for row in rows] for m, rows in self.scores.items()}}


def attribute_generation(loaded, prompts, *, methods=DEFAULT_METHODS, answer: str | None = None,
                         max_new_tokens: int = 20, sample: bool = False, seed: int | None = None,
                         temperature: float = 1.0, top_p: float = 1.0, chat: bool = False,
                         contrast: str | None = None, target_span: tuple[int, int] | None = None,
                         keep: str = "auto", chunk: int = 32, options: Mapping | None = None,
                         **fields) -> list[GeneratedAttribution]:
    """Generate (or force ``answer``) for each prompt (a text or texts, one batch) and explain every answer
    token with each method: see ``GeneratedAttribution``. ``fields`` are option shorthands (steps, baseline,
    window, fusion, ...), each applied to the methods that take it."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    chosen = {m: (options or {}).get(m) for m in methods}
    typed = method_options(list(methods), {m: o for m, o in chosen.items() if o is not None}, **fields)
    config = GenerationConfig(tuple(methods), typed, answer, Decoding(max_new_tokens, sample, seed, temperature, top_p),
                              chat, contrast, tuple(target_span) if target_span is not None else None, keep, chunk)
    return run_generation(loaded, prompts, config)


def run_generation(loaded, prompts: list[str], config: GenerationConfig) -> list[GeneratedAttribution]:
    """``attribute_generation`` with a checked config."""
    check_causal(loaded)
    encoded = encode_prompts(loaded, prompts, chat=config.chat)
    if config.answer is not None:
        answers = [encode_answer(loaded, config.answer)] * len(prompts)
    else:
        answers = generate(loaded, encoded, config.decoding)
    contrast = encode_answer(loaded, config.contrast, "--contrast") if config.contrast is not None else None
    _check_answers(loaded, prompts, answers, config.span)
    units = [[config.span] if config.span else [(t, t) for t in range(len(a))] for a in answers]
    forced = forced_batch(loaded, encoded.ids, answers, units, pad_id(loaded))
    scores, probs, extras = _methods(loaded, forced, config)
    versus = _contrast(loaded, encoded.ids, contrast) if contrast is not None else None
    out = []
    for b, prompt in enumerate(prompts):
        tokens = token_names(loaded.tokenizer, forced.prompts[b] + forced.answers[b])
        steps = _steps(tokens, len(forced.prompts[b]), units[b], probs[b], versus[b] if versus else None, extras[b])
        out.append(GeneratedAttribution(
            model=loaded.name, prompt=prompt, tokens=tokens, prompt_length=len(forced.prompts[b]), steps=steps,
            scores={m: _rows(scores[m][b]) for m in config.methods},
            params={m: dataclasses.asdict(config.options[m]) for m in config.methods}, notes=list(encoded.notes)))
    return out


def _rows(rows: list) -> list[np.ndarray]:
    """Score rows as 1-D float32 arrays: the methods hand over numpy views of their blocks, kept as they are."""
    return [r if isinstance(r, np.ndarray) and r.dtype == np.float32 else
            (r.detach().float().cpu().numpy() if isinstance(r, torch.Tensor) else np.asarray(r, dtype=np.float32))
            for r in rows]


def _check_answers(loaded, prompts, answers, span) -> None:
    for i, a in enumerate(answers):
        if not a:
            raise BadInput(f"{loaded.name} ended its answer to prompt {i + 1} at once: there is no token to explain")
        if span is not None and span[1] >= len(a):
            raise BadInput(f"--target-span {span[0]}-{span[1]} is outside the answer to prompt {i + 1}, which has "
                           f"{len(a)} tokens: give FIRST-LAST within 0-{len(a) - 1}")


def _methods(loaded, forced, config: GenerationConfig):
    """Scores per method (per example, per unit), step probabilities/entropies, and per-unit facts."""
    wanted = [m for m in config.methods if m in ATTENTION_ONLY]
    layers = None if not wanted else ([loaded.num_layers - 1] if wanted == ["attention"]
                                      else list(range(loaded.num_layers)))
    rows = wanted == ["attention"]  # raw attention reads the rows that predict the answer, nothing else
    keep = keep_for(loaded, config.keep, forced, len(layers), rows) if layers else "full"
    logits, offset, weights, q0 = forward(loaded, forced, layers, keep, rows)
    probs = step_scores(logits, offset, forced)
    del logits
    scores, extras = {}, [[{} for _ in units] for units in forced.units]
    for m in config.methods:
        if m in ATTENTION_ONLY:
            scores[m] = attention_scores(m, config.options[m], forced, weights, q0)
            continue
        if m in SHARED:  # input gradients: one forward pass, several steps per backward call
            found = shared_scores(loaded, forced, m, config.options[m], config.chunk)
        else:
            found = gradient_scores(loaded, forced, m, config.options[m], pad_id(loaded), config.chunk)
        scores[m] = [[s for s, _ in per] for per in found]
        for b, per in enumerate(found):
            for u, (_, facts) in enumerate(per):
                if "completeness_gap" in facts:
                    extras[b][u]["completeness_gap"] = float(facts["completeness_gap"])
    return scores, probs, extras


def _contrast(loaded, prompts: list[list[int]], contrast: list[int]) -> list[torch.Tensor]:
    """Per example, the probability (C,) of each contrast token after the prompt and the contrast before it."""
    alt = forced_batch(loaded, prompts, [contrast] * len(prompts), [[(0, 0)]] * len(prompts), pad_id(loaded))
    logits, offset, _, _ = forward(loaded, alt, None, "full")
    return [p for p, _ in step_scores(logits, offset, alt)]


def _steps(tokens, prompt_length: int, units, probs, versus, extras) -> list[dict]:
    """The step entries of one example (see GeneratedAttribution)."""
    prob, entropy = (t.tolist() for t in probs)
    versus = versus.tolist() if versus is not None else None
    steps = []
    for (first, last), facts in zip(units, extras):
        if first == last:  # one generated token (the common case: no slices, sums or joins)
            p, step = prob[first], {"token": tokens[prompt_length + first], "position": prompt_length + first,
                                    "probability": prob[first], "entropy": entropy[first]}
        else:
            p = math.prod(prob[first: last + 1])  # a span's joint probability
            step = {"token": "".join(tokens[prompt_length + first: prompt_length + last + 1]),
                    "position": prompt_length + last, "probability": p,
                    "entropy": sum(entropy[first: last + 1]) / (last + 1 - first)}
        if versus is not None:
            # Each answer is read after its own prefix: why this answer rather than that one (arXiv:2202.10419).
            step["contrast"] = p - math.prod(versus[first: last + 1]) if last < len(versus) else None
        if first != last:
            step["span"] = [first, last]
        step.update(facts)
        steps.append(step)
    return steps
