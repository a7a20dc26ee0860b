"""`attnviz attribute`: token attributions of several methods side by side, with faithfulness scores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from attnviz.attribution.methods import METHODS
from attnviz.attribution.methods.options import BASELINES, FUSIONS
from attnviz.cli import common as c

_METHODS = ", ".join(METHODS.names())
DEFAULT_METHODS = "grad-x-input,integrated-gradients,occlusion,rollout,attn-grad"
MAX_GENERATED = 1000  # fresh toy examples for --generated: each is explained by every method


@c.loads_models()
def attribute_cmd(
    texts: Annotated[Optional[list[str]], typer.Argument(help="input texts (quote each; question answering: 'QUESTION ||| CONTEXT'); run as one batch", show_default=False)] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="a file with one input per line ('-' for stdin)")] = None,
    method: Annotated[str, typer.Option("--method", help=f"comma-separated methods: {_METHODS}")] = DEFAULT_METHODS,
    target: Annotated[Optional[str], typer.Option(help="classifier or token label (name or index); LMs: a token or text; question answering: start, end or span (default: the prediction)")] = None,
    target_token: Annotated[Optional[int], typer.Option(help="token position to explain (causal LM: next token after it; masked LM: a [MASK]; token labels: the token; seq2seq: output position)")] = None,
    target_span: Annotated[bool, typer.Option("--target-span", help="causal LM: explain every token of a typed --target together (the sum of their log-probabilities), not just the first")] = False,
    reference: Annotated[Optional[str], typer.Option(help="sentence encoders: explain the cosine similarity to this text")] = None,
    steps: Annotated[str, typer.Option(help="integrated-gradients steps, or auto (until the completeness gap is under 1%)")] = "50",
    baseline: Annotated[str, typer.Option(help=f"{', '.join(BASELINES[:-1])} or {BASELINES[-1]}: what hidden tokens become (integrated gradients, occlusion, faithfulness)")] = "pad",
    window: Annotated[int, typer.Option(help="occlusion window in tokens")] = 1,
    fusion: Annotated[str, typer.Option(help=f"rollout head fusion: {', '.join(FUSIONS)}")] = "mean",
    discard_ratio: Annotated[float, typer.Option(help="rollout: share of the weakest attention to drop per layer")] = 0.0,
    faithfulness: Annotated[bool, typer.Option("--faithfulness/--no-faithfulness", help="deletion/insertion curves")] = True,
    generated: Annotated[Optional[int], typer.Option(help="explain N fresh examples of a trained toy, with ground truth")] = None,
    seed: Annotated[int, typer.Option(help="seed of --generated")] = 0,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="report.html, .png, .svg, .pdf or .json (default: outputs/<text>-attribution.html)")] = None,
    model: c.Model = "minilm",
    granularity: Annotated[str, typer.Option(help="token, word or char: scores summed over the tokens of a word "
                                                  "(or the byte pieces of a character)")] = "token",
    on_long: c.OnLong = "truncate",
    max_new_tokens: Annotated[Optional[int], typer.Option(help="encoder-decoder models: most output tokens the model generates (default 64)", show_default=False)] = None,
    answer: Annotated[Optional[list[str]], typer.Option(metavar="TEXT", help="encoder-decoder models: the output to explain instead "
                                                             "of the model's own (once for all inputs, or once each)")] = None,
    loader: c.Loader = c.Loader(),
):
    """Explain a model's decision token by token with several methods, and score their faithfulness."""
    from attnviz.attribution.methods import check_fields
    from attnviz.attribution.tokens import explain, method_options
    from attnviz.attribution.truth import generated as make_examples
    from attnviz.errors import BadInput
    from attnviz.io import DEFAULT_DIR, check_writable, slug
    from attnviz.models.granularity import check_granularity, group_attribution
    from attnviz.models.seq2seq import Answers, check_answers
    from attnviz.report.attribution import pick_format, write_report

    methods = list(c.names(method, METHODS))
    check_granularity(granularity)
    answers = Answers(max_new_tokens, tuple(answer or ()))
    fields = dict(steps=steps, baseline=baseline, window=window, fusion=fusion, discard_ratio=discard_ratio)
    check_fields(METHODS, **fields)  # every value, whichever methods run: a bad one is refused before loading
    options = method_options(methods, **fields)
    truth = None
    if generated is not None:
        if texts or file:
            raise BadInput("give texts or --generated, not both")
        if generated > MAX_GENERATED:
            raise BadInput(f"--generated must be at most {MAX_GENERATED}, not {generated}")
        inputs, truth = make_examples(model, generated, seed)
    else:
        inputs = c.read_texts(texts, file)
    if out is None:
        DEFAULT_DIR.mkdir(exist_ok=True)
        out = DEFAULT_DIR / f"{slug(inputs[0])}-attribution.html"
    pick_format(out)
    check_writable(out)
    loaded = loader.load(model)
    check_answers(loaded, answers)
    loaded.answers = answers
    _check_memory(loaded, inputs, on_long)
    attrs = explain(loaded, inputs, methods=methods, truth=truth, faithful=faithfulness, baseline=baseline,
                    target=target, target_token=target_token, reference=reference, on_long=on_long, options=options,
                    target_span=target_span)
    attrs = [group_attribution(a, granularity) for a in attrs]
    for note in attrs[0].extra.get("target_notes", ()):
        c.err_console.print(c.labelled("note:", "yellow", note), soft_wrap=True)
    paths, warnings = write_report(attrs, out, model=loaded.name, task=loaded.task, special=loaded.special_tokens)
    _summary(attrs, set(loaded.special_tokens))
    for warning in warnings:
        c.err_console.print(c.labelled("warning:", "yellow", warning), soft_wrap=True)
    for path in paths:
        c.console.print(str(path))


def _check_memory(loaded, inputs: list[str], on_long: str) -> None:
    """The inputs are explained as one batch (B, S): a gradient pass keeps, per layer, the attention
    (B, heads, S, S) and a few (B, S, hidden) activations. Refuse a batch whose estimate is over the budget
    that captures use (70% of the free memory), before the model runs it."""
    from attnviz.errors import BadInput
    from attnviz.recording import plan

    if loaded.tokenizer is None:
        return
    longest = max(loaded.token_counts(list(inputs)))
    seq = min(longest, loaded.max_length) if on_long == "truncate" else longest
    hidden = getattr(getattr(loaded.model, "config", None), "hidden_size", None) or 1024
    per_layer = 3 * loaded.num_heads * seq * seq + 12 * seq * hidden  # float32 values per example
    need, budget = 4 * per_layer * loaded.num_layers * len(inputs), plan.default_budget()
    if need > budget:
        raise BadInput(f"explaining these {len(inputs)} inputs as one batch needs about {plan.gib(need)} but may "
                       f"use {plan.gib(budget)}; explain fewer inputs at a time, or run `attnviz report --methods`, "
                       "which explains them in batches")


def _summary(attrs, special: set) -> None:
    """Per input: the target and, per method, its three best text tokens and faithfulness."""
    first = attrs[0]
    for e in range(len(first.tokens)):
        c.console.print(c.labelled(f"{e + 1}.", "bold", f"explains the {first.target[e]} · the model predicts "
                                                     f"{first.prediction[e]!r} · p = {first.probability[e]:.3g}"),
                        soft_wrap=True)
        idx = [i for i, m in enumerate(first.mask[e].tolist()) if m and first.tokens[e][i] not in special]
        for a in attrs:
            best = sorted(idx, key=lambda i: -float(a.scores[e, i]))[:3]
            line = f"   {a.method:<21} " + " ".join(repr(first.tokens[e][i]) for i in best)
            f = (a.extra.get("faithfulness") or [None] * (e + 1))[e]
            if f is not None:
                line += f"   deletion {f['deletion_auc']:.3g} insertion {f['insertion_auc']:.3g}"
                if f["top1"] is not None:
                    line += f" top-1 {'yes' if f['top1'] else 'no'}"
            if "completeness_gap" in a.extra:
                line += f"   gap {100 * a.extra['completeness_gap'][e]:.2f}% ({a.extra['steps']} steps)"
            c.console.print(line, soft_wrap=True)
