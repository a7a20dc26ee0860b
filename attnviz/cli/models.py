"""`attnviz models` and `attnviz info`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from attnviz.cli import common as c


def models_cmd():
    """List the built-in models: name, kind, layers, heads, task and where the weights come from."""
    from attnviz.models import describe_builtins

    table = Table(title="built-in models")
    for col in ("name", "kind", "task", "layers x heads", "accuracy", "weights"):
        table.add_column(col, no_wrap=col in ("name", "kind"))
    for row in describe_builtins():
        table.add_row(row["name"], row["kind"], row["task"], f"{row['layers']} x {row['heads']}", row["accuracy"],
                      row["source"])
    c.console.print(table)


@c.loads_models("device", "online", "allow_pickle", "trust_remote_code", "revision", device="cpu")
def info_cmd(
    name: Annotated[Optional[str], typer.Argument(help="built-in name, model folder or cached hub id")] = None,
    model: c.Model = "minilm",
    loader: c.Loader = c.Loader(),
):
    """Show a model's architecture and whether it runs on the attnviz kernel or the eager fallback."""
    loaded = loader.load(name or model)
    from attnviz.models import describe

    table = Table(show_header=False, title=loaded.name)
    for key, value in describe(loaded).items():
        table.add_row(key, str(value))
    c.console.print(table)
