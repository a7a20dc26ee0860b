"""`attnviz gallery`: the attention variants of the toy Transformer, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from attnviz.cli import common as c


def gallery_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the PNGs and index.html")] = Path("outputs/gallery"),
    text: Annotated[str, typer.Option(help="the example sentence (the toy knows English and Chinese words)")]
    = "the movie was not good today",
    layer: Annotated[int, typer.Option(help="layer to show (0-2)")] = 0,
):
    """Render mask patterns and score functions as heatmaps on one example, with an index page."""
    from attnviz.errors import BadInput
    from attnviz.report.gallery import write_gallery

    if not text.strip():
        raise BadInput("text is empty")
    from attnviz.models.toys.recipes import RECIPES

    layers = min(RECIPES["toy-sentiment"].config.n_layers, RECIPES["toy-shapes"].config.n_layers)
    if not 0 <= layer < layers:
        raise BadInput(f"layer {layer} is out of range; valid layers: 0-{layers - 1}")
    written = write_gallery(out, text=text, layer=layer)
    c.console.print(f"wrote {len(written)} files to {out}; open {out / 'index.html'}")
