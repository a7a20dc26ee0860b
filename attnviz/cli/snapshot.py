"""`attnviz snapshot record` and `attnviz snapshot check`: CI regression snapshots."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from attnviz.cli import common as c

app = typer.Typer(name="snapshot", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Record attention (and attribution) baselines, and check a model against them in CI.")

Dir = Annotated[Optional[Path], typer.Option("--dir", "-d", help="snapshot folder (default: snapshots)")]
Inputs = Annotated[Optional[Path], typer.Option("--inputs", "-i", help="a file with one input text per line")]
OptModel = Annotated[Optional[str], typer.Option("--model", "-m", help="model to run (check: default the manifest's)")]


THRESHOLDS = ("max_abs", "mean_abs", "jsd", "argmax", "attr_max", "attr_rank")  # Tolerance's fields
CONFIG_KEYS = ("dir", "inputs", "model", *THRESHOLDS)  # what [tool.attnviz.snapshot] may set


def _config() -> dict:
    """``[tool.attnviz.snapshot]`` (keys may use - or _), plus the shared ``model``."""
    cfg = c.config_defaults()
    own = {k.replace("-", "_"): v for k, v in cfg.get("snapshot", {}).items()}
    return {"model": cfg.get("shared", {}).get("model"), **own}


def _path(flag: Path | None, cfg: dict, key: str, default: str | None) -> Path | None:
    value = flag if flag is not None else cfg.get(key, default)
    return Path(value) if value is not None else None


def _regenerate(folder: Path, inputs: Path | None, model: str | None) -> str:
    """The command that makes the snapshot anew: ``check --update`` where a manifest says what to run, else
    ``record`` with the model and inputs given (placeholders where they were not)."""
    if not (Path(folder) / "manifest.json").is_file():
        cmd = ["attnviz", "snapshot", "record", "--dir", str(folder), "--model", model or "MODEL",
               "--inputs", str(inputs) if inputs else "INPUTS.txt"]
        return " ".join(shlex.quote(p) if p not in ("MODEL", "INPUTS.txt") else p for p in cmd)
    cmd = ["attnviz", "snapshot", "check", "--dir", str(folder)]
    cmd += ["--inputs", str(inputs)] if inputs else []
    cmd += ["--model", model] if model else []
    return " ".join(shlex.quote(p) for p in cmd) + " --update"


def _said(res, model: str, update: bool) -> None:
    c.console.print(f"{'updated' if update else 'recorded'} {len(res.written)} baselines in {res.folder} "
                    f"({model}, {res.settings.store_dtype})")
    if res.duplicates:
        c.err_console.print(c.labelled("note:", "yellow", f"{res.duplicates} repeated inputs were snapshotted once"))
    if res.removed:
        c.console.print(f"removed {len(res.removed)} baselines no input uses: {', '.join(res.removed)}")


@c.loads_models("device", "dtype", "online", "allow_pickle", "device_map", "device_max_memory", "load_in")
def record_cmd(
    inputs: Inputs = None,
    folder: Dir = None,
    model: OptModel = None,
    methods: Annotated[Optional[str], typer.Option(help="attribution methods to keep too, e.g. saliency,rollout")] = None,
    layers: Annotated[Optional[str], typer.Option(help="layers to keep, e.g. 0,3-5 (default: all)")] = None,
    heads: Annotated[Optional[str], typer.Option(help="heads to keep, e.g. 0-3 (default: all)")] = None,
    target: Annotated[Optional[str], typer.Option(help="attribution target label (default: the prediction)")] = None,
    reference: Annotated[Optional[str], typer.Option(help="attribution reference text (sentence encoders)")] = None,
    store_dtype: Annotated[str, typer.Option(help="float32 or float16")] = "float32",
    batch_size: Annotated[int, typer.Option(help="inputs per forward pass")] = 32,
    update: Annotated[bool, typer.Option("--update", help="rewrite existing baselines")] = False,
    loader: c.Loader = c.Loader(),
):
    """Record each input's attention (and attribution scores) as baselines, plus manifest.json."""
    from attnviz.attribution import METHODS
    from attnviz.errors import BadInput
    from attnviz.maps import parse_ranges
    from attnviz.snapshot import SnapshotSettings, record

    cfg = _config()
    inputs, folder = _path(inputs, cfg, "inputs", None), _path(folder, cfg, "dir", "snapshots")
    if inputs is None:
        raise BadInput("give the inputs with --inputs FILE (one text per line)")
    texts = c.read_texts(None, inputs)
    chosen = c.names(methods, METHODS)
    loaded = loader.load(model or cfg.get("model") or "minilm")
    settings = SnapshotSettings(parse_ranges(layers, loaded.num_layers, "layer"),
                                parse_ranges(heads, loaded.num_heads, "head"), store_dtype, chosen, batch_size,
                                target, reference)
    _said(record(loaded, texts, folder, settings, update=update), loaded.name, update)


@c.loads_models("device", "dtype", "online", "allow_pickle", "device_map", "device_max_memory", "load_in")
def check_cmd(
    folder: Dir = None,
    inputs: Inputs = None,
    model: OptModel = None,
    max_abs: Annotated[Optional[float], typer.Option(help="largest |Δ| of one attention weight")] = None,
    mean_abs: Annotated[Optional[float], typer.Option(help="largest mean |Δ| over a head")] = None,
    jsd: Annotated[Optional[float], typer.Option(help="largest row-wise Jensen-Shannon divergence (nats)")] = None,
    argmax: Annotated[Optional[float], typer.Option(help="least share of rows whose top key agrees")] = None,
    attr_max: Annotated[Optional[float], typer.Option(help="largest attribution |Δ| / max |baseline|")] = None,
    attr_rank: Annotated[Optional[float], typer.Option(help="least rank correlation of attribution scores")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="write diff.html (heatmaps of drifting heads)")] = None,
    junit: Annotated[Optional[Path], typer.Option("--junit", help="write JUnit XML, one test case per input")] = None,
    markdown: Annotated[Optional[Path], typer.Option("--markdown", help="write a Markdown summary")] = None,
    update: Annotated[bool, typer.Option("--update", help="rewrite the baselines from this model instead")] = False,
    top: Annotated[int, typer.Option(help="rows of the worst-heads table")] = 10,
    loader: c.Loader = c.Loader(),
):
    """Recompute and compare with the baselines: exit 1 on drift, 3 when a baseline is missing or corrupt."""
    from attnviz.io import check_writable
    from attnviz.snapshot import check, recorded_model, update as rewrite

    cfg = _config()
    inputs, folder = _path(inputs, cfg, "inputs", None), _path(folder, cfg, "dir", "snapshots")
    flags = dict(zip(THRESHOLDS, (max_abs, mean_abs, jsd, argmax, attr_max, attr_rank)))
    overrides = {k: (v if v is not None else cfg.get(k)) for k, v in flags.items()}
    for path in (report, junit, markdown):
        if path is not None:
            check_writable(path)
    texts = c.read_texts(None, inputs) if inputs is not None else None
    regenerate = _regenerate(folder, inputs, model)
    spec = model or recorded_model(folder, regenerate, required=not update) or cfg.get("model") or "minilm"
    loaded = loader.load(spec)
    if update:
        return _said(rewrite(loaded, texts, folder), loaded.name, True)
    result = check(loaded, texts, folder, regenerate=regenerate, overrides=overrides)
    _print(result, top)
    _write_reports(result, report, junit, markdown)
    if not result.ok:
        raise typer.Exit(1)


def _write_reports(result, report, junit, markdown) -> None:
    from attnviz.snapshot.ci import write_junit, write_markdown
    from attnviz.snapshot.html import write_html

    for path, write in ((report, write_html), (junit, write_junit), (markdown, write_markdown)):
        if path is not None:
            write(result, path)
            c.console.print(f"wrote {path}")


def _print(result, top: int) -> None:
    from attnviz.snapshot.result import HEAD_COLUMNS, head_cells, short

    texts = {r.key: r.text for r in result.inputs}
    heads = result.worst_heads(top)
    if heads:
        table = Table(title="worst heads", title_justify="left")
        for col in ("input", *HEAD_COLUMNS):
            table.add_column(col, overflow="fold")
        for h in heads:
            table.add_row(short(texts[h.key], 40), *head_cells(h))
        c.console.print(table)
    for r in result.failed:
        if r.status in ("tokens", "shape"):
            c.console.print(c.labelled(f"{r.status}:", "red", f"{short(r.text, 40)}: {r.message}"), soft_wrap=True)
    for r in result.inputs:
        for a in r.drifting_attrs:
            c.console.print(c.labelled(f"attribution {a.method}", "red", f"{short(r.text, 40)}: {a.problem}"),
                            soft_wrap=True)
    for key, base, cur in result.context:
        c.console.print(Text(f"context: {key} changed: {base} -> {cur}", style="dim"), soft_wrap=True)
    if result.unused:
        c.console.print(c.labelled("baselines no input uses:", "yellow", ", ".join(result.unused)), soft_wrap=True)
    style = "green" if result.ok else "red"
    c.console.print(Text(result.summary(), style=style), soft_wrap=True)


app.command("record")(c.guard(record_cmd))
app.command("check")(c.guard(check_cmd))
