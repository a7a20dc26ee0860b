"""The local engine: the batches run one after another in this process, and the PNGs are painted in spawn
worker processes (or here, with no workers) while the next batch is analysed."""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager

from attnviz.report import analyse
from attnviz.report.batch import buckets, finish_item, skipped_entry, start_item
from attnviz.report.figures import draw, init_worker, paint


def run(loaded, todo, cfg, out, result, done: dict[str, dict], finished) -> None:
    """Analyse ``todo`` [(item, model input, length)] in length buckets; every finished record goes into
    ``done`` (id -> record) and is announced with ``finished(id)``; failed items join ``result.skipped``. The
    workers write the PNGs into a local folder; for a URL they draw the bytes and this process writes them."""
    with _torch_threads(1 if cfg.workers > 0 else None):
        _render_all(loaded, todo, cfg, out, result, done, finished)


@contextmanager
def _torch_threads(n: int | None):
    """While drawing workers share the cores, torch's own thread pool only oversubscribes them."""
    import torch

    before = torch.get_num_threads()
    try:
        if n is not None:
            torch.set_num_threads(n)
        yield
    finally:
        torch.set_num_threads(before)


def _render_all(loaded, todo, cfg, out, result, done_ids, finished) -> None:
    pool = _pool(cfg.workers)
    pending: deque[tuple[Future | dict, dict]] = deque()
    try:
        for batch in buckets(todo, cfg.batch_size):
            for item, record, job, error in analyse.run_batch(loaded, batch, cfg):
                if error:
                    result.skipped.append(skipped_entry(item, error))
                    finished(item.id)
                    continue
                job = start_item(out, item, job)
                work = paint if job.folder is not None else draw
                pending.append((pool.submit(work, job) if pool else work(job), record))
                while pending and _ready(pending[0][0]):
                    _finish(pending.popleft(), out, done_ids, finished)
            # Keep a bounded number of items in flight: their attention arrays are held until painted.
            while len(pending) > 4 * max(cfg.batch_size, 1):
                _finish(pending.popleft(), out, done_ids, finished)
        while pending:
            _finish(pending.popleft(), out, done_ids, finished)
    except KeyboardInterrupt:
        for entry in pending:  # pictures that were already drawn still make finished items
            if _ready(entry[0]) and not (isinstance(entry[0], Future) and (entry[0].cancelled() or entry[0].exception())):
                _finish(entry, out, done_ids, finished)
        raise
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)


def _ready(value) -> bool:
    return not isinstance(value, Future) or value.done()


def _pool(workers: int) -> ProcessPoolExecutor | None:
    if workers == 0:
        return None
    # spawn: a forked child would inherit torch's thread pools and locks mid-use.
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker)


def _finish(entry, out, done_ids: dict[str, dict], finished) -> None:
    result, record = entry
    written = result.result() if isinstance(result, Future) else result
    record = finish_item(out, record, written)
    done_ids[record["id"]] = record
    finished(record["id"])
