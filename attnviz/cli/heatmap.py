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


def _capture(texts, file, model, loader: c.Loader, layers, heads, store_dtype, on_long):
    import torch

    from attnviz.recording import capture
    from attnviz.errors import BadInput
    from attnviz.maps import parse_ranges

    inputs = c.read_texts(texts, file)
    if store_dtype not in ("float32", "float16"):
        raise BadInput(f"--store-dtype must be float32 or float16, not {store_dtype!r}")
    loaded = loader.load(model)
    if loaded.kind != "vision":
        _note_image_files(inputs, loaded.name)
    layer_list = parse_ranges(layers, loaded.num_layers, "layer")
    head_list = parse_ranges(heads, loaded.num_heads, "head")
    maps = capture(loaded, inputs, layers=layer_list, heads=head_list, on_long=on_long,
                   store_dtype=getattr(torch, store_dtype))
    for note in maps.notes:
        c.err_console.print(c.labelled("note:", "yellow", note), soft_wrap=True)
    return maps


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
    loader: c.Loader = c.Loader(),
):
    """Capture every layer's and head's attention to one .safetensors file."""
    from attnviz.io import check_writable

    if out == Path("outputs/maps.safetensors"):
        out.parent.mkdir(exist_ok=True)
    check_writable(out)
    maps = _capture(texts, file, model, loader, layers, heads, store_dtype, on_long)
    maps.save(out)
    c.console.print(f"wrote {out}  ({len(maps.layers)} layers x {len(maps.heads)} heads, {len(maps.tokens)} inputs, {maps.backend})")


@c.loads_models()
def heatmap_cmd(
    texts: Texts = None,
    file: File = None,
    from_file: Annotated[Optional[Path], typer.Option("--from", help="render a saved maps file; loads no model")] = None,
    view: Annotated[str, typer.Option(help="head, layer, model or mean")] = "head",
    layer: Annotated[int, typer.Option(help="layer to show (negative counts from the end)")] = -1,
    head: Annotated[int, typer.Option(help="head to show (head view)")] = 0,
    stack: Annotated[str, typer.Option(help="encoder, decoder or cross (encoder-decoder models)")] = "encoder",
    hide_special: Annotated[bool, typer.Option("--hide-special", help="drop [CLS]/[SEP]/padding-like tokens")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="output file (default: outputs/<text>-<view>.<format>)")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="png, svg or pdf")] = None,
    model: c.Model = "minilm",
    on_long: c.OnLong = "truncate",
    loader: c.Loader = c.Loader(),
):
    """Draw attention as a heatmap: one head, a layer's heads, the whole model, or the head mean."""
    from attnviz.maps import AttentionMaps
    from attnviz.render import VIEWS
    from attnviz.report.figures import pick_format, write_heatmaps

    VIEWS.get(view)
    pick_format(fmt, out)
    inputs = None
    if from_file is not None:
        maps = AttentionMaps.load(from_file)
    else:
        inputs = c.read_texts(texts, file)
        maps = _capture(texts, file, model, loader, None, None, "float32", on_long)
    paths, warnings = write_heatmaps(maps, view=view, layer=layer, head=head, stack=stack,
                                     hide_special=hide_special, fmt=fmt, out=out, texts=inputs)
    for warning in warnings:
        c.err_console.print(c.labelled("warning:", "yellow", warning), soft_wrap=True)
    for path in paths:
        c.console.print(str(path))
