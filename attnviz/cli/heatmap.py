"""`attnviz capture` and `attnviz heatmap`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from attnviz.cli import common as c

Texts = Annotated[Optional[list[str]], typer.Argument(help="input texts (quote each)", show_default=False)]
File = Annotated[Optional[Path], typer.Option("--file", "-f", help="a file with one input per line ('-' for stdin)")]
Layers = Annotated[Optional[str], typer.Option(help="layers to keep, e.g. 0,3-5 (default: all)")]
Heads = Annotated[Optional[str], typer.Option(help="heads to keep, e.g. 0-3 (default: all)")]
Keep = Annotated[str, typer.Option(help="full maps, per-head statistics (grow with L, not L^2), or auto: full "
                                        "where they fit in --max-memory")]
TopK = Annotated[int, typer.Option("--top-k", help="keys kept per query with statistics")]
Overview = Annotated[int, typer.Option(help="side R of the pooled R x R overview kept with statistics (at most 256)")]
Queries = Annotated[Optional[str], typer.Option(help="query rows kept whole with statistics, e.g. 4000-4095")]
MaxMemory = Annotated[Optional[str], typer.Option("--max-memory", help="what the capture may keep, e.g. 8GiB "
                                                                       "(default: 70% of the free memory)")]
MaxNew = Annotated[Optional[int], typer.Option(help="encoder-decoder models: most output tokens the model generates (default 64)", show_default=False)]
Answer = Annotated[Optional[list[str]], typer.Option(metavar="TEXT", help="encoder-decoder models: the output to show instead of "
                                                          "the model's own (once for every input, or once each)")]


def _long(keep, top_k, overview, queries, max_memory) -> dict:
    return {"keep": keep, "top_k": top_k, "overview": overview, "queries": queries, "max_memory": max_memory}


def _capture_config(texts, file, model, loader: c.Loader, max_new_tokens=None, answer=None, **options):
    """The library's CaptureConfig: the inputs read here, once (standard input can be read only once)."""
    from attnviz.models.seq2seq import Answers
    from attnviz.report.capture import CaptureConfig

    return CaptureConfig(inputs=tuple(c.read_texts(texts, file)), model=model, loading=loader.options(),
                         answers=Answers(max_new_tokens, tuple(answer or ())), **options)


def _tell(maps, inputs) -> None:
    if maps.kind != "vision":
        _note_image_files(inputs, maps.model)
    for note in maps.notes:
        c.err_console.print(c.labelled("note:", "yellow", note), soft_wrap=True)


def _note_image_files(inputs: list[str], model: str) -> None:
    """An image path given to a text model is read as text: say so, in case --model was forgotten."""
    from attnviz.images import SUFFIXES

    for text in inputs:
        if Path(text).suffix.lower() in SUFFIXES and Path(text).is_file():
            c.err_console.print(c.labelled("note:", "yellow", f"{text} is an image file, but {model} reads text, so "
                                           "its name is drawn; give --model a vision model to draw the image"),
                                soft_wrap=True)


@c.loads_models()
def capture_cmd(
    texts: Texts = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="the .safetensors file to write")] = Path("outputs/maps.safetensors"),
    file: File = None,
    model: c.Model = "minilm",
    layers: Layers = None,
    heads: Heads = None,
    store_dtype: Annotated[str, typer.Option(help="float32 or float16")] = "float32",
    on_long: c.OnLong = "truncate",
    keep: Keep = "auto",
    top_k: TopK = 8,
    overview: Overview = 64,
    queries: Queries = None,
    max_memory: MaxMemory = None,
    max_new_tokens: MaxNew = None,
    answer: Answer = None,
    loader: c.Loader = c.Loader(),
):
    """Capture every layer's and head's attention to one .safetensors file."""
    from attnviz.report.capture import write_maps

    config = _capture_config(texts, file, model, loader, layers=layers, heads=heads, store_dtype=store_dtype,
                             on_long=on_long, max_new_tokens=max_new_tokens, answer=answer,
                             **_long(keep, top_k, overview, queries, max_memory))
    if out == Path("outputs/maps.safetensors"):
        out.parent.mkdir(exist_ok=True)
    maps = write_maps(config, out)
    _tell(maps, config.inputs)
    c.console.print(f"wrote {out}  ({len(maps.layers)} layers x {len(maps.heads)} heads, {len(maps.tokens)} inputs, {maps.backend})")


@c.loads_models()
def heatmap_cmd(
    texts: Texts = None,
    file: File = None,
    from_file: Annotated[Optional[Path], typer.Option("--from", help="render a saved maps file; loads no model")] = None,
    view: Annotated[str, typer.Option(help="head, layer, model or mean; for long inputs overview, positions or "
                                           "heads")] = "head",
    layer: Annotated[int, typer.Option(help="layer to show (negative counts from the end)")] = -1,
    head: Annotated[int, typer.Option(help="head to show (head view)")] = 0,
    stack: Annotated[str, typer.Option(help="encoder, decoder or cross (encoder-decoder models)")] = "encoder",
    hide_special: Annotated[bool, typer.Option("--hide-special", help="drop [CLS]/[SEP]/padding-like tokens")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="output file (default: outputs/<text>-<view>.<format>)")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="png, svg or pdf")] = None,
    model: c.Model = "minilm",
    granularity: Annotated[str, typer.Option(help="token, word or char: attention pooled over the tokens of a "
                                                  "word (or the byte pieces of a character): keys summed, queries "
                                                  "averaged")] = "token",
    scale: Annotated[str, typer.Option(help="head view colours: auto (linear; a first-token sink is left out of "
                                            "the scale), linear, log or rank")] = "auto",
    clip_percentile: Annotated[Optional[float], typer.Option(help="head view: the colour scale tops out at this "
                                                                  "percentile of the weights, e.g. 99")] = None,
    on_long: c.OnLong = "truncate",
    keep: Keep = "auto",
    top_k: TopK = 8,
    overview: Overview = 64,
    queries: Queries = None,
    max_memory: MaxMemory = None,
    max_new_tokens: MaxNew = None,
    answer: Answer = None,
    loader: c.Loader = c.Loader(),
):
    """Draw attention as a heatmap: one head, a layer's heads, the whole model, or the head mean."""
    from attnviz.report.capture import HeatmapConfig, write_heatmap_files

    long = _long(keep, top_k, overview, queries, max_memory)
    source = from_file if from_file is not None else _capture_config(texts, file, model, loader, on_long=on_long,
                                                                      max_new_tokens=max_new_tokens, answer=answer,
                                                                      **long)
    result = write_heatmap_files(HeatmapConfig(source, view=view, layer=layer, head=head, stack=stack,
                                               hide_special=hide_special, fmt=fmt, out=out,
                                               granularity=granularity, scale=scale, clip=clip_percentile))
    if from_file is None:
        _tell(result.maps, source.inputs)
    for warning in result.warnings:
        c.err_console.print(c.labelled("warning:", "yellow", warning), soft_wrap=True)
    for path in result.paths:
        c.console.print(str(path))
