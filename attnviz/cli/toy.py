"""`attnviz toy train` and `attnviz toy data`: the trained toys' training runs and synthetic data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from attnviz.cli import common as c

app = typer.Typer(help="Train the built-in toys and write their synthetic data with ground truth.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

Name = Annotated[str, typer.Argument(help="toy-sentiment, toy-induction, toy-reverse or toy-shapes")]
Seed = Annotated[int, typer.Option(help="random seed: the same seed gives the same result")]


def _recipe(name: str):
    from attnviz.errors import BadInput
    from attnviz.models.toys.recipes import RECIPES

    if name not in RECIPES:
        raise BadInput(f"unknown toy {name!r}; trainable toys: {', '.join(RECIPES)}")
    return RECIPES[name]


@app.command("train")
@c.guard
def train_cmd(
    name: Name,
    seed: Seed = 0,
    steps: Annotated[Optional[int], typer.Option(help="optimiser steps (default: the shipped toy's)")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="write the weights here (.safetensors)")] = None,
    heldout: Annotated[int, typer.Option(help="fresh examples the accuracy is measured on")] = 1000,
):
    """Train a toy from scratch and print its accuracy on freshly generated held-out data."""
    from attnviz.errors import BadInput
    from attnviz.io import check_writable
    from attnviz.attribution.toy_training import train_toy

    _recipe(name)
    if steps is not None and steps < 1:
        raise BadInput(f"--steps must be at least 1, not {steps}")
    if heldout < 1:
        raise BadInput(f"--heldout must be at least 1, not {heldout}")
    if out is not None:
        if out.suffix != ".safetensors":  # only that suffix is read back as a --model weights file
            raise BadInput(f"--out {out} must end in .safetensors")
        check_writable(out)
    result = train_toy(name, seed=seed, steps=steps, out=out, heldout=heldout)
    checks = "".join(f", {k} {v}" for k, v in result["checks"].items())
    c.console.print(f"{name}: held-out accuracy {result['accuracy']} after {result['steps']} steps "
                    f"(seed {seed}, {result['seconds']:.0f} s{checks})")
    if out is not None:
        c.console.print(f"wrote {out}")


@app.command("data")
@c.guard
def data_cmd(
    name: Name,
    out: Annotated[Path, typer.Option("--out", "-o", help="folder to write into (created if missing)")],
    n: Annotated[int, typer.Option("--n", help="number of examples")] = 100,
    seed: Seed = 0,
):
    """Write examples with labels and ground truth: JSONL for text, PNG images and masks for shapes."""
    from attnviz.errors import BadInput
    from attnviz.models.toys.data import generate
    from attnviz.models.toys.export import write_examples

    _recipe(name)
    if n > 100_000:
        raise BadInput(f"--n {n} is more than 100000 examples")
    written = write_examples(name, generate(name, n, seed), out)
    c.console.print(f"wrote {n} {name} examples ({len(written)} files) to {out}")
