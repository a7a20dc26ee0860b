"""`attnviz models` and `attnviz info`."""

from __future__ import annotations

from typing import Annotated

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


def info_cmd(
    model: Annotated[str, typer.Argument(help="built-in name, model folder or cached hub id")] = "minilm",
    device: c.Device = "cpu",
    online: c.Online = False,
    allow_pickle: c.AllowPickle = False,
    trust_remote_code: c.TrustRemote = False,
    revision: c.Revision = None,
):
    """Show a model's architecture and whether it runs on the attnviz kernel or the eager fallback."""
    loaded = c.load(model, device, None, online, allow_pickle, trust_remote_code, revision)
    from attnviz.models import describe

    table = Table(show_header=False, title=loaded.name)
    for key, value in describe(loaded).items():
        table.add_row(key, str(value))
    c.console.print(table)
