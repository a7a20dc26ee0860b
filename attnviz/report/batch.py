"""Batch reports: inputs -> length-bucketed batches -> capture (+ attribution) -> PNGs in workers -> files.

Each finished item is one folder ``items/<slug>/`` whose ``item.json`` is written last and atomically, so
an interrupted run leaves only valid items and ``resume`` skips them. The output folder is a local path or an
fsspec URL (``report.outdir``). One bad input is skipped with its
reason; it never aborts the batch.
"""

from __future__ import annotations

import json
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from attnviz.errors import BadInput
from attnviz.report import analyse
from attnviz.io import json_bytes, slug
from attnviz.report.inputs import Item
from attnviz.report.outdir import LocalOut, UrlOut, open_out
from attnviz.report.summary import flag_non_finite, summary_files
from attnviz.report.figures import PaintJob

if TYPE_CHECKING:
    from attnviz.report.engines import Cluster


@dataclass(frozen=True)
class ReportConfig:
    out: Path | str  # the output folder (or an fsspec URL, e.g. s3://bucket/report); every file written stays inside it
    views: tuple[str, ...] = ("head",)  # PNG views per item (names in attnviz.render.VIEWS)
    layer: int = -1  # model layer of the head view (negative counts from the end)
    head: int = 0  # head of the head view
    batch_size: int = 16  # inputs per forward pass, grouped by length
    workers: int = 0  # local: rendering processes (spawn), 0 renders in this process; ray: actors (0: one)
    methods: tuple[str, ...] = ()  # attribution methods to run (attnviz.attribution)
    resume: bool = False  # keep items whose item.json exists instead of redoing them
    on_long: str = "skip"  # skip or truncate inputs longer than the model's maximum
    dpi: int = 100  # PNG resolution
    html: bool = True  # write report.html
    keep: str = "auto"  # full maps, statistics, or auto: statistics for inputs over LONG_TOKENS or what cannot fit
    max_memory: int | None = None  # bytes one batch's capture may keep; None: a safe share of free memory
    engine: str = "local"  # where the batches run: a name in attnviz.report.engines.ENGINES (local, ray)
    cluster: Cluster | None = None  # the ray engine's model spec, loading options and runtime


@dataclass
class ReportResult:
    records: list[dict] = field(default_factory=list)  # finished items, in input order
    skipped: list[dict] = field(default_factory=list)  # {"id", "error", "text"} per skipped input
    resumed: int = 0  # items kept from an earlier run
    files: list[Path | str] = field(default_factory=list)  # summary.json, summary.csv, report.html (URLs for a URL)
    interrupted: bool = False


Progress = Callable[[int, str], None]  # (items finished so far, id of the last one)


def item_name(item_id: str) -> str:
    """The folder of one item inside the output folder: a slug of its id (with a hash)."""
    return f"items/{slug(item_id)}"


def run_report(loaded, items: list[Item], cfg: ReportConfig, progress: Progress | None = None) -> ReportResult:
    """Run every item; write per-item files, summary.json/csv and report.html. Ctrl-C keeps finished items."""
    from attnviz.report.engines import engine_for

    out = open_out(cfg.out)  # a URL whose file system is missing is refused here
    check_settings(loaded, items, cfg)
    engine = engine_for(cfg)  # an engine that cannot run (ray not installed) is refused before anything is written
    out.prepare()
    result = ReportResult()
    todo, done = _triage(loaded, items, cfg, out, result)
    counter = {"n": 0}

    def finished(item_id: str) -> None:
        counter["n"] += 1
        if progress:
            progress(counter["n"], item_id)

    for _ in range(result.resumed + len(result.skipped)):
        finished("")
    with _Stop() as stop:
        try:
            engine(loaded, todo, cfg, out, result, done, finished)
        except KeyboardInterrupt:
            result.interrupted = True
        stop.quiet()  # from here on the summaries are written, whatever signal comes
        result.interrupted |= stop.hit
        result.records = [done[item.id] for item in items if item.id in done]
        result.files = _write_outputs(out, loaded, result, cfg)
    if result.interrupted:
        raise KeyboardInterrupt
    return result


class _Stop:
    """Ctrl-C (SIGINT) or SIGTERM stop a run once: the first raises KeyboardInterrupt where the run is; any later
    one, while the workers stop and the summaries are written, is only noted. A second Ctrl-C during the shutdown
    used to break it (a hang in the pool's exit, or an abort) and lose the summary. Handlers are restored on
    exit; outside the main thread signals cannot be handled here and nothing changes."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.hit = False
        self.before: dict = {}

    def __enter__(self) -> "_Stop":
        if threading.current_thread() is threading.main_thread():
            self.before = {sig: signal.getsignal(sig) for sig in self.SIGNALS}
            for sig in self.SIGNALS:
                signal.signal(sig, self._first)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.before.items():
            signal.signal(sig, handler)

    def quiet(self) -> None:
        for sig in self.before:
            signal.signal(sig, self._later)

    def _first(self, signum, frame) -> None:
        self.hit = True
        self.quiet()
        raise KeyboardInterrupt

    def _later(self, signum, frame) -> None:
        self.hit = True


def check_settings(loaded, items: list[Item], cfg: ReportConfig) -> None:
    """Settings that would fail every item are refused before anything is written."""
    if loaded.meta.get("windowed"):  # Swin: no per-layer map to capture, for any item
        raise BadInput(loaded.meta["windowed"])
    images = loaded.kind == "vision"
    if items and all((it.image is not None) != images for it in items):
        given, reads = ("texts", "images") if images else ("images", "text")
        raise BadInput(f"the inputs are {given}, but {loaded.name} reads {reads}; choose a "
                       f"{'text model' if images else 'vision model such as toy-shapes'} with --model")
    if cfg.workers < 0:
        raise BadInput("--workers must be 0 or more")
    if cfg.batch_size < 1:
        raise BadInput("--batch-size must be at least 1")
    if not -loaded.num_layers <= cfg.layer < loaded.num_layers:
        raise BadInput(f"layer {cfg.layer} is out of range; valid layers: 0-{loaded.num_layers - 1}")
    if "head" in cfg.views and not 0 <= cfg.head < loaded.num_heads:  # heads do not count from the end
        raise BadInput(f"head {cfg.head} is out of range; valid heads: 0-{loaded.num_heads - 1}")


def _triage(loaded, items, cfg, out, result) -> tuple[list[tuple[Item, object, int]], dict[str, dict]]:
    """Split into bad (skipped), already done (resume: id -> its record) and to-do items with their prepared input."""
    done: dict[str, dict] = {}
    todo = []
    earlier = _finished_records(out, [it.id for it in items if not it.error]) if cfg.resume else {}
    for item in items:
        record = earlier.get(item.id) if not item.error else None
        if item.error:
            result.skipped.append(skipped_entry(item, item.error))
        elif record is not None:
            done[item.id] = record
            result.resumed += 1
        else:
            todo.append(item)
    prepared = []
    for item, (value, length, error) in zip(todo, analyse.prepare(loaded, todo, cfg.on_long)):
        if error:
            result.skipped.append(skipped_entry(item, error))
        else:
            prepared.append((item, value, length))
    return prepared, done


def skipped_entry(item: Item, error: str) -> dict:
    return {"id": item.id, "error": error, "text": item.text if item.text is not None else str(item.image or "")}


RECORD_TYPES = {"id": str, "tokens": list, "files": dict, "notes": list}  # what every reader of a record needs


def _finished_records(out: LocalOut | UrlOut, ids: list[str]) -> dict[str, dict]:
    """id -> an earlier run's record of that item, for those whose item.json is whole and whose files are all
    inside ``out``; a damaged or outside one is left out, so the item is redone (its item.json replaced, never
    followed)."""
    names = {f"{item_name(i)}/item.json": i for i in ids}
    found = {}
    for name, data in out.read_all(names):
        try:
            record = json.loads(data.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError is one
            continue
        if (isinstance(record, dict) and record.get("id") == names[name]
                and all(isinstance(record.get(k), t) for k, t in RECORD_TYPES.items())
                and all(isinstance(f, str) for f in record["files"].values())):
            found[names[name]] = record
    present = out.existing({f for r in found.values() for f in r["files"].values()})
    return {i: r for i, r in found.items() if set(r["files"].values()) <= present}


def buckets(prepared: list, size: int) -> list[list]:
    """Batches of similar length: sorting by length keeps padding (and wasted attention) small."""
    ordered = sorted(prepared, key=lambda p: p[2])
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def start_item(out: LocalOut | UrlOut, item: Item, job: dict) -> PaintJob:
    """The paint job of one analysed item, its folder created inside ``out``. Its ``folder`` is None for a URL:
    the PNGs are then drawn as bytes (``figures.draw``) and written by ``finish_item``."""
    return PaintJob(folder=out.folder(item_name(item.id)), **job)


def finish_item(out: LocalOut | UrlOut, record: dict, written: dict[str, str | bytes]) -> dict:
    """Write one item's remaining files and its item.json (last); returns the record as written. ``written``:
    view -> the file name a painter wrote in the item's folder, or the PNG bytes still to write."""
    rel = item_name(record["id"])
    record["files"] = {}
    for view, name in [*written.items(), *record.pop("long_png", {}).items()]:  # long inputs: drawn with statistics
        if isinstance(name, bytes):
            out.write(f"{rel}/{view}.png", name)
            name = f"{view}.png"
        record["files"][view] = f"{rel}/{name}"
    # item.json is written last: its presence is what marks the item finished for --resume.
    record = flag_non_finite(record)
    out.write(f"{rel}/item.json", json_bytes(record))
    return record


def _write_outputs(out: LocalOut | UrlOut, loaded, result: ReportResult, cfg: ReportConfig) -> list[Path | str]:
    """summary.json, summary.csv and report.html, all rendered before any is written: they always agree."""
    from attnviz.report.html import DATA_DIR, html_files

    meta = {"model": loaded.name, "kind": loaded.kind, "task": loaded.task, "labels": list(loaded.labels),
            "methods": list(cfg.methods), "interrupted": result.interrupted, "skipped": len(result.skipped)}
    records = [flag_non_finite(r) for r in result.records]
    contents = summary_files(records, result.skipped, meta)
    if cfg.html:
        contents.update(html_files(records, meta))  # a corpus: report.html is an index, items in report-data/
    if any(name.startswith(f"{DATA_DIR}/") for name in contents):
        out.folder(DATA_DIR)
    written = {name: out.write(name, data) for name, data in contents.items()}
    return [path for name, path in written.items() if "/" not in name]  # the item files are not listed
