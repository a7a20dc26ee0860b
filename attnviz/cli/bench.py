"""`attnviz bench SUITE`: measurements of the explanations themselves (suite: faithfulness)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from attnviz.cli import common as c

SUITES = ("faithfulness",)


@c.loads_models()
def bench_cmd(
    suite: Annotated[str, typer.Argument(help="what to measure: faithfulness (CAM maps against ground truth)")],
    model: c.Model = "toy-shapes",
    images: Annotated[Optional[Path], typer.Option(help="labelled folder FOLDER/<class>/<image> (optional <stem>.mask.png); default: the toy's own data")] = None,
    n: Annotated[int, typer.Option("--n", help="images drawn from a toy's data generator")] = 200,
    seed: Annotated[int, typer.Option(help="seed of the toy data and the random baseline")] = 0,
    methods: Annotated[str, typer.Option(help="comma-separated CAM methods, or all")] = "all",
    batch_size: Annotated[int, typer.Option(help="images per pass")] = 32,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="also write the rows as JSON to this file")] = None,
    loader: c.Loader = c.Loader(),
):
    """Pointing game, mask IoU and perturbation AUC of every CAM method, one row each."""
    from attnviz.attribution.faithfulness import images as fv
    from attnviz.attribution.methods import CAM_METHODS
    from attnviz.errors import BadInput
    from attnviz.io import check_writable, write_atomic

    if suite not in SUITES:
        raise BadInput(f"unknown bench suite {suite!r}; known: {', '.join(SUITES)}")
    if n < 1 or batch_size < 1:
        raise BadInput("--n and --batch-size must be at least 1")
    if json_out is not None:
        check_writable(json_out)
    chosen = None if methods.strip() in ("", "all") else list(c.names(methods, CAM_METHODS))
    loaded = loader.load(model)
    fv.check_classifier(loaded)  # before the folder: its subfolders are read as the model's classes
    data = fv.folder_examples(images, loaded.labels) if images is not None else fv.toy_examples(model, n, seed)
    rows = fv.evaluate(loaded, data, chosen, batch_size=batch_size, seed=seed)
    _print(rows, loaded.name, len(data))
    if json_out is not None:
        payload = {"model": loaded.name, "images": len(data), "steps": list(fv.STEPS), "seed": seed,
                   "rows": [r.to_dict() for r in rows]}
        write_atomic(json_out, (json.dumps(payload, indent=2) + "\n").encode())
        c.console.print(f"wrote {json_out}", soft_wrap=True)


def _print(rows, model: str, n: int) -> None:
    from rich.table import Table

    def fmt(v):
        return "-" if v is None else f"{v:.3f}"

    table = Table(title=f"CAM faithfulness · {model} · {n} images")
    for col, hint in (("method", ""), ("pointing", "↑"), ("IoU", "↑"), ("AUC pos.", "↓"), ("AUC neg.", "↑")):
        table.add_column(f"{col} {hint}".strip(), justify="left" if col == "method" else "right")
    for r in rows:
        table.add_row(r.method, fmt(r.pointing), fmt(r.iou), fmt(r.auc_positive), fmt(r.auc_negative))
    c.console.print(table)
