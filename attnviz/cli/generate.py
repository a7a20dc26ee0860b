"""`attnviz generate`: generate (or force) an answer and explain every token of it back to the prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from attnviz.attribution.methods.options import BASELINES
from attnviz.cli import common as c

METHODS_HELP = "attention, rollout, attn-grad, grad-rollout, saliency, grad-x-input, integrated-gradients, occlusion"


def parse_span(text: str | None) -> tuple[int, int] | None:
    """'2-5' -> (2, 5): answer tokens counted from 0, both ends included; '3' -> (3, 3)."""
    from attnviz.errors import BadInput

    if text is None or not text.strip():
        return None
    first, _, last = text.strip().partition("-")
    try:
        return int(first), int(last or first)
    except ValueError:
        raise BadInput(f"cannot read --target-span {text!r}; write FIRST-LAST (answer tokens from 0), e.g. 0-3") from None


@c.loads_models()
def generate_cmd(
    prompts: Annotated[Optional[list[str]], typer.Argument(help="prompts (quote each); run as one batch", show_default=False)] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="a file with one prompt per line ('-' for stdin)")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="most tokens to generate")] = 20,
    answer: Annotated[Optional[str], typer.Option(help="explain this answer instead of generating one (forced decoding)")] = None,
    sample: Annotated[bool, typer.Option("--sample", help="sample instead of greedy decoding")] = False,
    seed: Annotated[Optional[int], typer.Option(help="seed of --sample")] = None,
    temperature: Annotated[float, typer.Option(help="--sample: temperature")] = 1.0,
    top_p: Annotated[float, typer.Option(help="--sample: nucleus probability mass")] = 1.0,
    chat: Annotated[bool, typer.Option("--chat", help="apply the tokenizer's chat template (where it has one)")] = False,
    method: Annotated[str, typer.Option("--method", help=f"comma-separated methods: {METHODS_HELP}")] = "attention,attn-grad,grad-x-input",
    contrast: Annotated[Optional[str], typer.Option(help="an alternative answer: the step scores add p(answer) - p(alternative)")] = None,
    target_span: Annotated[Optional[str], typer.Option(help="explain answer tokens FIRST-LAST (from 0) as one target")] = None,
    steps: Annotated[str, typer.Option(help="integrated-gradients steps, or auto")] = "50",
    baseline: Annotated[str, typer.Option(help=f"{', '.join(BASELINES)}: what hidden tokens become (integrated gradients, occlusion)")] = "pad",
    window: Annotated[int, typer.Option(help="occlusion window in tokens")] = 1,
    keep: Annotated[str, typer.Option(help="attention maps for the attention methods: auto, full or stats (long prompts)")] = "auto",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="g.html, .png, .svg, .pdf or .json (default: outputs/<prompt>-generate.html)")] = None,
    model: c.Model = "toy-decoder",
    loader: c.Loader = c.Loader(),
):
    """Generate an answer and explain every generated token, back to the prompt (and the answer before it)."""
    from attnviz.attribution.generation import GENERATION_METHODS, GenerationConfig, run_generation
    from attnviz.attribution.tokens import method_options
    from attnviz.errors import BadInput
    from attnviz.io import DEFAULT_DIR, check_writable, slug
    from attnviz.models.generate import Decoding
    from attnviz.report.generation import pick_format, write_generation

    methods = c.names(method)
    for m in methods:
        if m not in GENERATION_METHODS:
            raise BadInput(f"unknown method {m!r} for generate; choose from {', '.join(GENERATION_METHODS)}")
    options = method_options(list(methods), steps=steps, baseline=baseline, window=window)
    config = GenerationConfig(methods, options, answer, Decoding(max_new_tokens, sample, seed, temperature, top_p),
                              chat, contrast, parse_span(target_span), keep)
    texts = c.read_texts(prompts, file)
    if out is None:
        DEFAULT_DIR.mkdir(exist_ok=True)
        out = DEFAULT_DIR / f"{slug(texts[0])}-generate.html"
    pick_format(out)
    check_writable(out)
    loaded = loader.load(model)
    results = run_generation(loaded, texts, config)
    paths, warnings = write_generation(results, out)
    _summary(results)
    for line in [*results[0].notes, *warnings]:
        c.err_console.print(c.labelled("warning:", "yellow", line), soft_wrap=True)
    for path in paths:
        c.console.print(str(path))


def _summary(results) -> None:
    """Per prompt: the answer, and per method the position each generated token drew on most."""
    import numpy as np

    for i, r in enumerate(results):
        c.console.print(c.labelled(f"{i + 1}.", "bold", f"answer {''.join(r.answer)!r}"), soft_wrap=True)
        for m, rows in r.scores.items():
            best = [int(np.argmax(np.nan_to_num(row, nan=-np.inf))) for row in rows]  # the first largest
            parts = " ".join(f"{s['token']}<-{r.tokens[b]}@{b}" for s, b in zip(r.steps[:8], best))
            c.console.print(f"   {m:<21} {parts}{' ...' if len(best) > 8 else ''}", soft_wrap=True)
        gaps = [s["completeness_gap"] for s in r.steps if "completeness_gap" in s]
        if gaps:
            c.console.print(f"   integrated-gradients completeness gap: max {100 * max(gaps):.2f}%", soft_wrap=True)
