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


@c.loads_models(device="cpu")
def info_cmd(
    name: Annotated[Optional[str], typer.Argument(help="built-in name, model folder or cached hub id")] = None,
    model: c.Model = "minilm",
    loader: c.Loader = c.Loader(),
):
    """Show a model's architecture, whether it runs on the attnviz kernel or the eager fallback, how it pads a
    batch and where each layer sits."""
    loaded = loader.load(name or model)
    from attnviz.models import describe

    table = Table(show_header=False, title=loaded.name)
    for key, value in {**describe(loaded), **_placed(loaded)}.items():
        table.add_row(key, str(value))
    c.console.print(table)


def _placed(loaded) -> dict:
    """dtype, padding and, per stack, the device of each attention layer (accelerate's map, or the one device)."""
    from attnviz.models.placement import layer_devices, summary

    facts = {"dtype": str(next(loaded.model.parameters()).dtype).replace("torch.", "")}
    if loaded.meta.get("padding"):
        facts["padding"] = loaded.meta["padding"]
    stacks = layer_devices(loaded.model, loaded.forward_module)
    for stack, layers in stacks.items():
        facts["layers on" if len(stacks) == 1 else f"{stack} layers on"] = summary(layers)
    return facts
