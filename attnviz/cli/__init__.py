"""The attnviz command line: one Typer app, one file per command group."""

from __future__ import annotations

import typer

from attnviz.cli import attribute, bench, cam, gallery, heatmap, models, report, snapshot, toy
from attnviz.cli.common import config_defaults, guard

app = typer.Typer(
    name="attnviz",
    help="See what a Transformer attends to and why it decides what it decides.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMANDS = {
    "heatmap": heatmap.heatmap_cmd,
    "capture": heatmap.capture_cmd,
    "attribute": attribute.attribute_cmd,
    "cam": cam.cam_cmd,
    "report": report.report_cmd,
    "models": models.models_cmd,
    "info": models.info_cmd,
    "gallery": gallery.gallery_cmd,
    "bench": bench.bench_cmd,
}
for _name, _fn in COMMANDS.items():
    app.command(_name)(guard(_fn))
app.add_typer(snapshot.app, name="snapshot")  # record, check
app.add_typer(toy.app, name="toy")  # train, data


def default_map() -> dict:
    """``[tool.attnviz]`` defaults for every command; command-line options override them."""
    cfg = config_defaults()
    shared = cfg.pop("shared", {})
    return {name: {**shared, **cfg.get(name, {})} for name in COMMANDS}


def main() -> None:
    app(default_map=default_map())
