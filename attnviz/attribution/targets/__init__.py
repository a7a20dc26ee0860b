"""What is explained: one target type for texts and images, built from the model's first output.

A ``Target`` is a callable, as pytorch-grad-cam's targets are: ``target(output, rows)`` turns the model's
output for the examples ``rows`` into one differentiable score each (a class logit, a token's logit, a
cosine similarity, CLIP's image-text similarity, an embedding's norm). It also carries a probability-like
value for faithfulness curves, the output positions whose attention rows explain it, and what to show.

One registry holds a builder per target (label, next token, masked token, cosine to a reference, seq2seq
token, image class, CLIP prompt, image embedding); ``build_target`` picks the one that fits the model.
``resolve_label`` is the one resolver of --target for classes and prompts, for texts and images alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from attnviz.errors import BadInput
from attnviz.registry import Registry

# name -> fn(loaded, batch: dict, output, spec: TargetSpec) -> Target
TARGETS: Registry[Callable] = Registry("target")
# Which option each text task takes, for messages that say what fits.
FITS = {
    "classification": "--target LABEL|INDEX",
    "causal-lm": "--target-token POS (and optionally --target TOKEN)",
    "masked-lm": "--target-token POS of a [MASK] (and optionally --target TOKEN)",
    "embedding": '--reference "TEXT"',
    "seq2seq": "--target-token POS in the output (and optionally --target TOKEN)",
}
# text task -> the target that explains it
TEXT_TARGETS = {"classification": "label", "causal-lm": "next-token", "masked-lm": "masked-token",
                "embedding": "cosine", "seq2seq": "seq2seq-token"}


@dataclass(frozen=True)
class TargetSpec:
    """What the user asked to explain, checked before the model runs."""

    label: str | tuple | None = None  # --target: a class name or index (one per example as a tuple), or an LM token/id
    position: int | None = None  # --target-token: a token position (negative counts from the end)
    reference: str | None = None  # --reference: text whose embedding the input is compared with
    prompts: tuple[str, ...] = ()  # --prompt: CLIP's texts; the target is one of them
    span: bool = False  # --target-span: every token of a typed --target, as the sum of their log-probabilities


@dataclass
class Target:
    """A callable target: ``target(output, rows)`` -> (n,) differentiable scores of examples ``rows`` (n,).

    ``rows`` (B, Q) weights the output positions whose relevance rows explain the target (None: the first
    token, a vision Transformer's CLS, whatever the sequence length); ``stack`` names the attention stack
    those rows index (encoder | decoder | cross: rows over decoder positions). ``index`` and ``labels``
    name the class, token or prompt per example; ``probs`` (B, C) is the distribution over ``labels`` that
    top-k lists read (None where there is none).
    """

    score: Callable  # (output, rows (n,)) -> (n,) differentiable score
    prob: Callable  # (output, rows (n,)) -> (n,) probability (or cosine) for faithfulness curves
    rows: torch.Tensor | None  # (B, Q) weights of the output positions that explain the target
    stack: str  # encoder | decoder | cross
    describe: list[str]  # per example, e.g. "label positive"
    prediction: list[str]  # per example, the model's own output
    probability: list[float]  # per example, of the target
    index: list[int] = field(default_factory=list)  # class / token / prompt index per example; -1: none
    labels: list[str] = field(default_factory=list)  # what ``index`` counts in: class names or prompts
    probs: torch.Tensor | None = None  # (B, C) over ``labels``, on the CPU
    notes: list[str] = field(default_factory=list)  # what the user should know, e.g. which tokens --target became

    def __call__(self, output, rows: torch.Tensor | None = None) -> torch.Tensor:
        """(n,) scores of the examples ``rows`` (default: every example of the batch)."""
        if rows is None:
            rows = torch.arange(len(self.describe))
        return self.score(output, rows)


def resolve_label(given, labels: list[str], predicted: list[int], noun: str = "label") -> list[int]:
    """--target CLASS|INDEX -> one index per example; None keeps each example's ``predicted`` index.

    ``given`` may be a name in ``labels``, an index (int or digits), or one of those per example (a list).
    Without ``labels`` any index is accepted (the caller checks it against what it indexes).
    """
    if given is None or given == "":
        return list(predicted)
    if isinstance(given, (list, tuple)):  # one per example, e.g. ground-truth labels
        return [resolve_label(one, labels, [p], noun)[0] for one, p in zip(given, predicted)]
    text = str(given).strip()
    shown = ", ".join(f"{i} {name}" for i, name in enumerate(labels[:20])) + (", ..." if len(labels) > 20 else "")
    if text in labels:
        return [labels.index(text)] * len(predicted)
    if text.lstrip("-").isdigit():
        index = int(text)
        if labels and not 0 <= index < len(labels):
            raise BadInput(f"{noun} {index} is out of range; valid {noun}s: {shown}")
        return [index] * len(predicted)
    if not labels:
        raise BadInput(f"unknown {noun} {text!r}; this model has no class names, so give an index")
    raise BadInput(f"unknown {noun} {text!r}; valid {noun}s: {shown}")


def refuse(task: str, given: str, why: str) -> None:
    """BadInput: ``given`` does not fit a ``task`` model, and what does."""
    article = "an" if task[0] in "aeiou" else "a"
    raise BadInput(f"{given} does not fit this model ({why}); for {article} {task} model use {FITS[task]}")


def check_spec(task: str, spec: TargetSpec) -> None:
    """A text model's target options, refused with what fits before the model runs."""
    if task not in FITS:
        raise BadInput(f"attribution explains {', '.join(FITS)} models, not {task!r}")
    if spec.reference is not None and task != "embedding":
        refuse(task, "--reference", "it is not a sentence encoder")
    if spec.position is not None and task in ("classification", "embedding"):
        refuse(task, "--target-token", "it does not predict tokens")
    if spec.label is not None and task == "embedding":
        refuse(task, "--target", "a sentence encoder has no labels")
    if spec.span:
        from attnviz.attribution.targets.span import check_span

        check_span(task, spec)


def target_name(loaded, output, spec: TargetSpec) -> str:
    """The registered target that explains ``loaded`` given its first ``output``."""
    if loaded.kind != "vision":
        check_spec(loaded.task, spec)
        return TEXT_TARGETS[loaded.task]
    if spec.prompts:
        return "clip-prompt"
    return "image-class" if getattr(output, "logits", None) is not None else "image-embedding"


def build_target(loaded, batch: dict, output, spec: TargetSpec) -> Target:
    """The target of ``spec`` for one batch, from the model's ``output`` on it (which fixes the predictions)."""
    return TARGETS.get(target_name(loaded, output, spec))(loaded, batch, output, spec)


from attnviz.attribution.targets import generated, images, tasks, text  # noqa: E402,F401  (registration)

__all__ = ["TARGETS", "Target", "TargetSpec", "build_target", "resolve_label"]
