"""The attnviz command line: one Typer app, one file per command group."""

from __future__ import annotations

import typer

from attnviz.cli import heatmap, models, report
from attnviz.cli.common import config_defaults, guard

app = typer.Typer(
    name="attnviz",
    help="See what a Transformer attends to and why it decides what it decides.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMANDS = {
    "gallery": __import__("attnviz.cli.gallery", fromlist=["gallery_cmd"]).gallery_cmd,
    "capture": heatmap.capture_cmd,
    "heatmap": heatmap.heatmap_cmd,
    "models": models.models_cmd,
    "info": models.info_cmd,
    "cam": __import__("attnviz.cli.cam", fromlist=["cam_cmd"]).cam_cmd,
    "bench": __import__("attnviz.cli.bench", fromlist=["bench_cmd"]).bench_cmd,
    "report": report.report_cmd,
    "attribute": __import__("attnviz.cli.attribute", fromlist=["attribute_cmd"]).attribute_cmd,
}
for _name, _fn in COMMANDS.items():
    app.command(_name)(guard(_fn))
app.add_typer(__import__("attnviz.cli.toy", fromlist=["app"]).app, name="toy")

from attnviz.cli import snapshot as _snapshot  # noqa: E402  (a command group: record, check)

app.add_typer(_snapshot.app, name="snapshot")


def default_map() -> dict:
    """``[tool.attnviz]`` defaults for every command; command-line options override them."""
    cfg = config_defaults()
    shared = cfg.pop("shared", {})
    return {name: {**shared, **cfg.get(name, {})} for name in COMMANDS}


def main() -> None:
    app(default_map=default_map())
