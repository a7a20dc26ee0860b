"""The attnviz command line: one Typer app, one file per command group."""

from __future__ import annotations

import difflib
import inspect
import os
import signal
import sys

try:  # importing the commands takes a while (torch): Ctrl-C meanwhile is the documented exit, not a traceback
    import typer

    from attnviz.cli import attribute, bench, cam, gallery, generate, heatmap, models, report, snapshot, toy
    from attnviz.cli.common import PROCESS, ending, err_console, guard, labelled
    from attnviz.cli.pyproject import check_values, option_types, read_table, split
    from attnviz.errors import AttnvizError
except KeyboardInterrupt:
    sys.stderr.write("interrupted\n")
    raise SystemExit(130) from None

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
    "generate": generate.generate_cmd,
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
    """``[tool.attnviz]`` defaults for every command; command-line options override them.

    A key that no command takes gets a warning, so that a misspelt option is not silently ignored; a value
    of the wrong type for its option is BadInput (one line, exit 2) before any command runs.
    """
    path, table = read_table()
    cfg = split(table, path) if path is not None else {}
    shared = cfg.pop("shared", {})
    typed = {name: option_types(fn) for name, fn in COMMANDS.items()}
    flagged = {**option_types(snapshot.record_cmd, flags=True), **option_types(snapshot.check_cmd, flags=True)}
    typed["snapshot"] = {k: flagged.get(k) for k in snapshot.CONFIG_KEYS}  # keys spelt as the flags (dir, max-abs)
    for section, keys in [("", shared), *((f".{name}", keys) for name, keys in cfg.items())]:
        options = set().union(*typed.values()) if not section else typed.get(section[1:])
        if options is None:
            _warn(f"[tool.attnviz{section}] is not a command; commands: {', '.join(typed)}")
            continue
        for types_ in ([typed[section[1:]]] if section else typed.values()):
            check_values(section, keys, types_, path)
        for key in keys:
            if key not in options:
                close = difflib.get_close_matches(key, options, n=1)
                hint = f" (did you mean {close[0].replace('_', '-')}?)" if close else ""
                _warn(f"[tool.attnviz{section}] {key.replace('_', '-')} is not an option{hint}")
    return {name: {**shared, **cfg.get(name, {})} for name in COMMANDS}


def _warn(message: str) -> None:
    err_console.print(labelled("warning:", "yellow", f"pyproject.toml {message}"), soft_wrap=True)


def main() -> None:
    # The command line owns its process: transformers' warnings while a model runs would be lines that are
    # not ours (a library call sets this only for its own duration and then restores it).
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # A report's drawing workers are processes of their own: their warnings would print with source lines.
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    PROCESS["owned"] = True
    interrupted = []

    def interrupt(signum, frame):  # SIGTERM ends a command as Ctrl-C does: finished work kept, exit 130
        interrupted.append(signum)
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)
    try:
        app(default_map=default_map())
    except AttnvizError as err:
        err_console.print(labelled("error:", "red", err), soft_wrap=True)
        raise SystemExit(err.exit_code) from None
    except KeyboardInterrupt:  # before a command runs (reading pyproject.toml)
        ending()
        raise SystemExit(130) from None
    except SystemExit as done:
        # Click turns a Ctrl-C outside a command (while parsing options, say) into "Aborted!" and exit 1.
        if interrupted and done.code not in (0, 130):
            ending()
            raise SystemExit(130) from None
        raise
