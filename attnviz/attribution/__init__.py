"""Attribution: explain a model's decision token by token, with several methods side by side.

``attribute(loaded, inputs, method=..., target=...)`` runs one method; ``attribute_many`` runs several
on one shared batch. The methods live in one small file per family and register in ``METHODS``.
"""

from __future__ import annotations

import torch

from attnviz.attribution import gradients, integrated, occlusion, relevance  # noqa: F401  (registration)
from attnviz.attribution.base import METHODS, Attribution, Context
from attnviz.attribution.targets import TargetOptions, build_target, check_options
from attnviz.errors import BadInput

# Options a method may take, for a clear message on a misspelt one.
OPTIONS = ("steps", "baseline_kind", "rule", "window", "fusion", "discard_ratio")


def prepare(loaded, inputs, *, target: str | None = None, target_token: int | None = None,
            reference: str | None = None, chunk: int = 32, on_long: str = "truncate") -> Context:
    """Encode ``inputs`` as one batch, run the model once and fix the target for every method."""
    if loaded.kind == "vision":
        raise BadInput(f"attribute explains text models; {loaded.name} reads images: use `attnviz cam`")
    if chunk < 1:
        raise BadInput(f"chunk must be >= 1, not {chunk}")
    label = None if target is None else str(target)  # a class or token index may come as an int
    opts = TargetOptions(label=label, position=target_token, reference=reference)
    check_options(loaded.task, opts)
    enc = loaded.encode(inputs, on_long=on_long)
    with torch.no_grad():
        out = loaded.model(**enc.batch)
    mask = enc.batch["attention_mask"]
    tgt = build_target(loaded, enc.batch, mask, out, opts)
    ids = enc.batch["input_ids"]
    with torch.no_grad():
        embeds = loaded.model.get_input_embeddings()(ids).detach()  # (B, S, D)
    specials = torch.tensor(getattr(loaded.tokenizer, "all_special_ids", []), device=ids.device, dtype=ids.dtype)
    special = torch.isin(ids, specials) | (mask == 0)  # (B, S)
    return Context(loaded, enc.batch, enc.tokens, mask, tgt, embeds, special, chunk=chunk)


def run_method(ctx: Context, method: str, **options) -> Attribution:
    fn = METHODS.get(method)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise BadInput(f"unknown attribution option {unknown[0]!r}; known: {', '.join(OPTIONS)}")
    scores, extra = fn(ctx, **options)
    t = ctx.target
    return Attribution(
        method=method, tokens=ctx.tokens, scores=scores.detach().float().cpu(), mask=ctx.mask.cpu(),
        target=list(t.describe), prediction=list(t.prediction), probability=list(t.probability),
        params={k: v for k, v in options.items() if v is not None and k in _accepts(fn)}, extra={"model": ctx.loaded.name, **extra},
    )


def _accepts(fn) -> set[str]:
    """The options a method takes: only those are reported as its parameters."""
    import inspect

    return {name for name in inspect.signature(fn).parameters if name in OPTIONS}


def attribute_many(loaded, inputs, *, methods: list[str], target: str | None = None, target_token: int | None = None,
                   reference: str | None = None, chunk: int = 32, on_long: str = "truncate",
                   **options) -> tuple[Context, list[Attribution]]:
    """Several methods on one batch; returns the shared context too (faithfulness reuses it)."""
    if not methods:
        raise BadInput(f"no method given; known: {', '.join(METHODS.names())}")
    for m in methods:
        METHODS.get(m)
    ctx = prepare(loaded, inputs, target=target, target_token=target_token, reference=reference, chunk=chunk,
                  on_long=on_long)
    return ctx, [run_method(ctx, m, **options) for m in methods]


def explain(loaded, inputs, *, methods: list[str], truth: list[list[int]] | None = None, faithful: bool = True,
            **options) -> list[Attribution]:
    """Several methods side by side, each with its faithfulness scores (what `attnviz attribute` reports)."""
    from attnviz.attribution.faithfulness import score_all

    if truth is not None and len(truth) != len(inputs):  # before any method runs
        raise BadInput(f"{len(truth)} ground-truth lists for {len(inputs)} inputs")
    ctx, attrs = attribute_many(loaded, inputs, methods=methods, **options)
    if faithful:
        score_all(ctx, attrs, truth, options.get("baseline_kind", "pad"))
    return attrs


def attribute(loaded, inputs, *, method: str, target: str | None = None, **options) -> Attribution:
    """One method's token scores for ``inputs`` (texts, run as one batch)."""
    if isinstance(inputs, str):
        inputs = [inputs]
    return attribute_many(loaded, inputs, methods=[method], target=target, **options)[1][0]


__all__ = ["METHODS", "Attribution", "attribute", "attribute_many", "explain", "prepare", "run_method"]
