"""`attnviz report`: a whole file of texts or a folder of images -> PNGs, summary.json/csv, report.html."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from attnviz.cli import common as c

AUTO_WORKERS_FROM = 50  # below this many items, starting worker processes costs more than it saves


def _workers(workers: int | None, n_items: int, engine: str = "local") -> int:
    if workers is not None:
        return workers
    if engine == "ray":
        return min(2, os.cpu_count() or 1) if n_items >= AUTO_WORKERS_FROM else 1
    return min(2, os.cpu_count() or 1) if n_items >= AUTO_WORKERS_FROM else 0


def _cluster(engine: str, model: str, loader, address: str | None, gpus: float):
    """The ray engine's options; a model folder is made absolute, since the actors do not share our directory."""
    from attnviz.errors import BadInput
    from attnviz.report.engines import Cluster

    if engine != "ray":
        if address is not None or gpus:
            raise BadInput("--address and --num-gpus-per-worker are options of --engine ray")
        return None
    spec = str(Path(model).resolve()) if Path(model).exists() else model
    return Cluster(model=spec, load=loader.options(), address=address, gpus=gpus)


@c.loads_models()
def report_cmd(
    source: Annotated[Path, typer.Argument(help="a text file (one input per line), .jsonl, .csv (column text), a folder of images, or an image")],
    out: Annotated[str, typer.Option("--out", "-o", help="output folder, or an fsspec URL (file://, s3://bucket/"
                                                        "report with s3fs, ...)")] = "outputs/report",
    views: Annotated[str, typer.Option(help="PNG views per item, comma-separated: head, layer, model, mean; \"\" for none (summaries and HTML only)")] = "head",
    layer: Annotated[int, typer.Option(help="layer of the head view (negative counts from the end)")] = -1,
    head: Annotated[int, typer.Option(help="head of the head view")] = 0,
    methods: Annotated[Optional[str], typer.Option(help="attribution methods, comma-separated (default: none)")] = None,
    batch_size: Annotated[int, typer.Option(help="inputs per forward pass (grouped by length)")] = 16,
    workers: Annotated[Optional[int], typer.Option(help=f"rendering processes (default: 2 from {AUTO_WORKERS_FROM} items, else 0); "
                                                        "with --engine ray, actors (default: 2, or 1 under that)")] = None,
    engine: Annotated[str, typer.Option(help="where the batches run: local, or ray (a Ray cluster, or a local Ray "
                                             "runtime without --address; pip install 'attnviz[ray]')")] = "local",
    address: Annotated[Optional[str], typer.Option(help="--engine ray: the cluster to join (e.g. auto, "
                                                        "ray://head:10001); --out must be a path every node sees, or a URL")] = None,
    num_gpus_per_worker: Annotated[float, typer.Option(help="--engine ray: GPUs per actor (each actor loads the "
                                                            "model once)")] = 0.0,
    limit: Annotated[Optional[int], typer.Option(help="run at most this many inputs (after sharding)")] = None,
    shard: Annotated[Optional[str], typer.Option(help="K/N: run every N-th input starting with the K-th")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="keep items finished by an earlier run")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="exit 2 when any input was skipped")] = False,
    on_long: Annotated[str, typer.Option(help="skip or truncate inputs longer than the model's maximum")] = "skip",
    html: Annotated[bool, typer.Option("--html/--no-html", help="write report.html")] = True,
    dpi: Annotated[int, typer.Option(help="PNG resolution")] = 100,
    keep: Annotated[str, typer.Option(help="full maps, per-head statistics, or auto: statistics for inputs over "
                                           "512 tokens or what does not fit in --max-memory")] = "auto",
    max_memory: Annotated[Optional[str], typer.Option("--max-memory", help="what one batch's capture may keep, "
                                                                           "e.g. 8GiB")] = None,
    model: c.Model = "minilm",
    loader: c.Loader = c.Loader(),
):
    """Batch report: per-item PNGs, summary.json/csv and one offline, interactive report.html."""
    from attnviz.attribution import METHODS
    from attnviz.errors import BadInput
    from attnviz.render import VIEWS
    from attnviz.report.batch import ReportConfig, check_settings, run_report
    from attnviz.report.engines import ENGINES, engine_for
    from attnviz.recording.plan import Plan, parse_size
    from attnviz.report.inputs import Shard, read_items
    from attnviz.report.outdir import is_url, open_out

    chosen_views = c.names(views, VIEWS)
    if dpi < 30 or dpi > 600:
        raise BadInput("--dpi must be between 30 and 600")
    items = read_items(source, limit=limit, shard=Shard.parse(shard))
    ENGINES.get(engine)
    cfg = ReportConfig(out=out if is_url(out) else Path(out), views=chosen_views, layer=layer, head=head, batch_size=batch_size,
                       workers=_workers(workers, len(items), engine), methods=c.names(methods, METHODS), resume=resume,
                       on_long=on_long, dpi=dpi, html=html, keep=Plan(keep=keep).keep, max_memory=parse_size(max_memory),
                       engine=engine, cluster=_cluster(engine, model, loader, address, num_gpus_per_worker))
    engine_for(cfg)  # e.g. Ray not installed: exit 2 before the model loads
    open_out(cfg.out)  # a URL whose file system is not installed: the same
    loaded = loader.load(model)
    check_settings(loaded, items, cfg)  # before the progress bar: a refusal is then the only line printed
    result = _run_with_progress(loaded, items, cfg, run_report)
    _print_summary(result)
    if strict and result.skipped:
        raise typer.Exit(2)


def _run_with_progress(loaded, items, cfg, run_report):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("[bold]report[/bold]"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=c.err_console, transient=False) as bar:
        task = bar.add_task("report", total=len(items), rate="")

        def step(done: int, _item_id: str) -> None:
            speed = bar.tasks[0].speed
            bar.update(task, completed=done, rate=f"{speed:.1f} items/s" if speed else "")

        try:
            return run_report(loaded, items, cfg, step)
        except KeyboardInterrupt:
            c.ending()
            bar.stop()
            c.err_console.print(c.labelled("interrupted:", "yellow", f"finished items are kept in {cfg.out}; "
                                           "run again with --resume to go on"), soft_wrap=True)
            raise typer.Exit(130) from None


def _print_summary(result) -> None:
    from rich.table import Table

    table = Table(title=f"{len(result.records)} items", show_lines=False)
    for col in ("id", "prediction", "entropy", "most attended"):
        table.add_column(col, overflow="fold")
    for r in result.records[:20]:
        pred = r.get("prediction") or {}
        table.add_row(str(r["id"]), str(pred.get("label", "")), f"{r.get('mean_entropy', 0):.2f}",
                      " ".join(t["token"] for t in r.get("most_attended", [])[:3]))
    if len(result.records) > 20:
        table.add_row("…", "", "", "")
    c.console.print(table)
    for s in result.skipped:
        c.err_console.print(c.labelled("skipped", "yellow", f"{s['id']}: {s['error']}"), soft_wrap=True)
    c.console.print(f"done {len(result.records)} (resumed {result.resumed}), skipped {len(result.skipped)}")
    for path in result.files:
        c.console.print(str(path), soft_wrap=True)
