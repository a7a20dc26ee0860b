"""Token attribution of texts: one encoded batch, one target, several methods side by side.

``prepare`` encodes the inputs and fixes the target; ``run_method`` runs one registered method on it
with its typed options; ``attribute_many`` runs several on one shared batch; ``explain`` adds their
faithfulness. Options are checked when built, before any model runs.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import torch

from attnviz.attribution.context import Context, embedded
from attnviz.attribution.methods import METHODS, options_for
from attnviz.attribution.results import Attribution
from attnviz.attribution.targets import TargetSpec, build_target, check_spec
from attnviz.errors import BadInput


def prepare(loaded, inputs: list[str], *, target=None, target_token: int | None = None, reference: str | None = None,
            chunk: int = 32, on_long: str = "truncate", target_span: bool = False) -> Context:
    """Encode ``inputs`` as one batch (B, S), run the model once and fix the target for every method;
    ``target_span`` explains every token of a typed ``target`` together (attribution/targets/span.py)."""
    if loaded.kind == "vision":
        raise BadInput(f"attribute explains text models; {loaded.name} reads images: use `attnviz cam`")
    if chunk < 1:
        raise BadInput(f"chunk must be >= 1, not {chunk}")
    label = None if target is None else str(target)  # a class or token index may come as an int
    spec = TargetSpec(label=label, position=target_token, reference=reference, span=target_span)
    check_spec(loaded.task, spec)
    enc = loaded.encode(inputs, on_long=on_long)
    if target_span:
        from attnviz.attribution.targets.span import span_inputs, span_target

        enc, span_ids, appended = span_inputs(loaded, enc, label)
    with torch.no_grad():
        out = loaded.model(**enc.batch)
    tgt = span_target(loaded, enc, out, spec, span_ids) if target_span else build_target(loaded, enc.batch, out, spec)
    tgt.notes = [*enc.notes, *tgt.notes]  # a truncated input or a cut output is said with the target
    ids, mask = enc.batch["input_ids"], enc.batch["attention_mask"]
    embeds, special = embedded(loaded, ids, mask)  # (B, S, D), (B, S)
    if target_span:  # the target's own tokens are context, not input to explain
        special |= appended
    return Context(loaded, enc.batch, enc.tokens, mask, tgt, embeds, special, chunk=chunk, pieces=enc.pieces,
                   bounds=enc.bounds, context=appended if target_span else None)


def method_options(methods: list[str], options: Mapping | None = None, **fields) -> dict:
    """Method name -> its typed options: ``options[name]`` where given, else built from ``fields``
    (e.g. steps=50, baseline="pad": each method takes the fields it declares). Every value is checked."""
    options = dict(options or {})
    extra = sorted(set(options) - set(methods))
    if extra:
        raise BadInput(f"options given for {extra[0]!r}, which is not among the methods run")
    return {m: options_for(m, options.get(m), **fields) for m in methods}


def run_method(ctx: Context, method: str, options=None, **fields) -> Attribution:
    """One method on a prepared batch: token scores (B, S) with the typed options it ran with (built
    from shorthand ``fields`` such as steps=50 when ``options`` is None; its defaults without either)."""
    spec = METHODS.get(method)
    options = options_for(method, options, **fields)
    scores, extra = spec.fn(ctx, options)
    t, shown = ctx.target, _shown(ctx)
    return Attribution(
        method=method, tokens=ctx.tokens, scores=scores.detach().float().cpu() * shown, mask=shown,
        target=list(t.describe), prediction=list(t.prediction), probability=list(t.probability),
        params=dataclasses.asdict(options),
        extra={"model": ctx.loaded.name, **extra, **({"target_notes": tuple(t.notes)} if t.notes else {})},
        pieces=ctx.pieces, bounds=ctx.bounds,
    )


def _shown(ctx: Context) -> torch.Tensor:
    """(B, S) 1 on the tokens a result shows: the real ones, without a span's appended context."""
    mask = ctx.mask.cpu()
    return mask if ctx.context is None else mask * ~ctx.context.cpu()


def attribute_many(loaded, inputs: list[str], *, methods: list[str], target=None, target_token: int | None = None,
                   reference: str | None = None, chunk: int = 32, on_long: str = "truncate",
                   target_span: bool = False, options: Mapping | None = None, **fields) -> tuple[Context, list[Attribution]]:
    """Several methods on one batch of B texts (S tokens after padding): the shared context
    (faithfulness reuses it) and one Attribution with scores (B, S) per method, in order.

    ``options`` maps a method to its typed options; ``fields`` are shorthands for them (steps, baseline,
    rule, window, fusion, discard_ratio), each applied to the methods that take it.
    """
    if not methods:
        raise BadInput(f"no method given; known: {', '.join(METHODS.names())}")
    chosen = method_options(list(methods), options, **fields)
    ctx = prepare(loaded, inputs, target=target, target_token=target_token, reference=reference, chunk=chunk,
                  on_long=on_long, target_span=target_span)
    return ctx, [run_method(ctx, m, chosen[m]) for m in methods]


def explain(loaded, inputs: list[str], *, methods: list[str], truth: list[list[int]] | None = None,
            faithful: bool = True, baseline: str = "pad", **settings) -> list[Attribution]:
    """Several methods side by side, each an Attribution with scores (B, S) and, in
    ``extra["faithfulness"]``, per example its deletion/insertion curves and areas (what `attnviz
    attribute` reports).

    ``baseline`` is what hidden tokens become, in the faithfulness curves and in the methods that hide
    tokens; ``truth`` holds per input the deciding token positions, for top-1/top-k agreement.
    """
    from attnviz.attribution.faithfulness import score_all

    if truth is not None and len(truth) != len(inputs):  # before any method runs
        raise BadInput(f"{len(truth)} ground-truth lists for {len(inputs)} inputs")
    ctx, attrs = attribute_many(loaded, inputs, methods=methods, baseline=baseline, **settings)
    if faithful:
        score_all(ctx, attrs, truth, baseline)
    return attrs


def attribute(loaded, inputs, *, method: str, target=None, options=None, **settings) -> Attribution:
    """One method's token scores (B, S) for ``inputs`` (a text or texts, run as one batch).

    ``options`` is the method's typed options (e.g. IntegratedOptions(steps=50)); keyword shorthands
    such as ``steps=50`` build them. ``settings`` also takes target_token, reference, chunk, on_long.
    """
    if isinstance(inputs, str):
        inputs = [inputs]
    given = {method: options} if options is not None else None
    return attribute_many(loaded, inputs, methods=[method], target=target, options=given, **settings)[1][0]
