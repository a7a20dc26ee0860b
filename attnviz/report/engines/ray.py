"""The Ray engine: the length buckets as a Ray dataset (one row per bucket), mapped with ``map_batches``
through a pool of actors that each load the model once (on a GPU where given) and write their items' files
into the output folder: a path every node sees (a shared file system), or an fsspec URL that each actor
opens itself (s3://..., so no shared disk is needed). The driver takes the records as the actors finish them,
feeds the progress callback and writes the summaries as the local engine does (``batch.run_report``), so both
engines give the same summary.json for the same inputs.

One row per bucket, not per item: the buckets are the local engine's, so every item is padded in the same
company and its numbers are the same whichever engine ran it. A killed actor is restarted and its bucket
run again (Ray's max_restarts / max_task_retries); the files are rewritten whole (atomic writes, item.json
last) and the driver keeps one record per id, so nothing is duplicated or lost.
"""

from __future__ import annotations

import json
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

from attnviz.errors import BadInput
from attnviz.report.batch import buckets, finish_item, skipped_entry, start_item
from attnviz.report.engines import EXTRA, Cluster, check_cluster
from attnviz.report.inputs import Item

RETRIES = 3  # restarts of a killed actor, and reruns of the bucket it held; a bucket that kills every try fails
MAX_BLOCKS = 4096  # dataset blocks: one bucket each up to here, so a killed actor loses only the bucket it held


def check(cfg) -> None:
    """Ray must be installed, and the engine's options possible; refused before anything is written."""
    _ray()
    check_cluster(cfg.cluster)


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401  (the dataset API is the `ray[data]` part of the extra)
    except ImportError:
        raise BadInput(f"--engine ray needs Ray, which is not installed: {EXTRA}") from None
    return ray


def run(loaded, todo, cfg, out, result, done: dict[str, dict], finished) -> None:
    """Run the buckets of ``todo`` [(item, model input, length)] on the actor pool (see engines/__init__)."""
    ray = _ray()
    cluster = cfg.cluster or Cluster(model=loaded.name)
    batches = buckets(todo, cfg.batch_size)
    if not batches:
        return
    rows = [{"items": json.dumps([_item_row(item) for item, _, _ in b], ensure_ascii=False)} for b in batches]
    workers = max(1, min(cfg.workers, len(batches)))  # an actor without a bucket would only load the model
    with _runtime(ray, cluster, workers):
        results = _mapped(ray, rows, cfg, cluster, out.spec, workers)
        seen: set[str] = set()
        for row in results.iter_rows():  # as the actors finish, in any order
            value = json.loads(row["value"])
            if value["id"] in seen:  # never expected (a retried bucket's first try yields nothing); kept safe
                continue
            seen.add(value["id"])
            if row["kind"] == "done":
                done[value["id"]] = value
            else:
                result.skipped.append(value)
            finished(value["id"])


def _item_row(item: Item) -> dict:
    return {"id": item.id, "text": item.text, "image": str(item.image) if item.image else None,
            "target": item.target, "reference": item.reference}


def _mapped(ray, rows: list[dict], cfg, cluster: Cluster, out: str, workers: int):
    data = ray.data.from_items(rows, override_num_blocks=min(len(rows), MAX_BLOCKS))
    with warnings.catch_warnings():  # bounded retries still go through ray_remote_args in Ray 2.60
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
        return data.map_batches(
            _Worker, fn_constructor_kwargs={"cfg": cfg, "cluster": cluster, "out": out},
            batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
            num_gpus=cluster.gpus or None, max_restarts=RETRIES, max_task_retries=RETRIES)


@contextmanager
def _runtime(ray, cluster: Cluster, workers: int):
    """The cluster at ``cluster.address``, or a local runtime started here (loopback only, no dashboard, no
    usage reports) and shut down after; a runtime already started by the caller is used and left running."""
    if ray.is_initialized():
        yield
        return
    quiet = {"RAY_USAGE_STATS_ENABLED": "0"}  # Ray would otherwise report usage over the network
    before = {k: os.environ.get(k) for k in quiet}
    os.environ.update(quiet)
    try:
        if cluster.address:
            ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        else:
            cpus = cluster.cpus or max(os.cpu_count() or 1, workers)
            ray.init(num_cpus=cpus, num_gpus=None, include_dashboard=False, _node_ip_address="127.0.0.1",
                     log_to_driver=False, logging_level="ERROR")
        _quiet_data(ray)
        yield
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for k, v in before.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def _quiet_data(ray) -> None:
    """attnviz draws its own progress bar: Ray Data's bars and execution logs would only interleave with it."""
    import logging

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


class _Worker:
    """One actor: loads the model once, then runs one bucket per call and writes its items' files."""

    def __init__(self, cfg, cluster: Cluster, out: str):
        from attnviz.report.figures import init_worker
        from attnviz.report.outdir import open_out

        init_worker()
        self.cfg, self.out = cfg, open_out(out)  # a local path as the driver resolved it, or a URL
        self.loaded = cluster.load.load(cluster.model)

    def __call__(self, batch: dict) -> dict:
        """{"items": [JSON bucket]} -> {"kind": ["done" | "skipped"], "value": [JSON record or skip entry]}."""
        from attnviz.report import analyse
        from attnviz.report.figures import draw, paint

        kinds, values = [], []
        for text in batch["items"]:
            items = [Item(r["id"], r["text"], Path(r["image"]) if r["image"] else None, r["target"], r["reference"])
                     for r in json.loads(text)]
            prepared = []
            for item, (value, n, error) in zip(items, analyse.prepare(self.loaded, items, self.cfg.on_long)):
                if error:  # e.g. an image that became unreadable since the driver looked
                    kinds.append("skipped")
                    values.append(skipped_entry(item, error))
                else:
                    prepared.append((item, value, n))
            for item, record, job, error in analyse.run_batch(self.loaded, prepared, self.cfg) if prepared else ():
                if error:
                    kinds.append("skipped")
                    values.append(skipped_entry(item, error))
                    continue
                job = start_item(self.out, item, job)
                kinds.append("done")
                values.append(finish_item(self.out, record, paint(job) if job.folder is not None else draw(job)))
        return {"kind": kinds, "value": [json.dumps(v, ensure_ascii=False) for v in values]}
