"""Where a batch report's batches run: ``local`` (this process, PNGs painted in spawn workers) or ``ray``
(a Ray dataset mapped through an actor pool, on a cluster or a local runtime). Ray is imported only in
``engines/ray.py``, and only when that engine runs: it is an optional extra (``attnviz[ray]``).

An engine is ``run(loaded, todo, cfg, out, result, done, finished)``: it analyses ``todo``
[(item, model input, length)] in the length buckets of ``batch.buckets``, writes each item's files and
item.json into ``out`` (a ``report.outdir`` folder, a local path or an fsspec URL; ``out.spec`` is what another
process opens) through ``batch.start_item``/``batch.finish_item``, puts every finished record into ``done``
(id -> record), failed items into ``result.skipped``, and calls ``finished(id)`` once per item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Callable

from attnviz.errors import BadInput
from attnviz.models import LoadOptions
from attnviz.registry import Registry

EXTRA = "pip install 'attnviz[ray]'"


@dataclass(frozen=True)
class Cluster:
    """What the ray engine's actors need to load the model themselves, and which Ray runtime to use."""

    model: str  # the model spec each actor loads (a built-in name, a folder on the shared file system, a hub id)
    load: LoadOptions = field(default_factory=LoadOptions)  # how each actor loads it
    address: str | None = None  # a running cluster (ray://host:10001, host:6379, auto); None: start a local one
    gpus: float = 0.0  # GPUs per actor (fractions share one GPU between actors)
    cpus: int | None = None  # CPUs of the local runtime attnviz starts (None: all of this machine's)


ENGINES: Registry[str] = Registry("engine")  # name -> module that defines run()
ENGINES.register("local")("attnviz.report.engines.local")
ENGINES.register("ray")("attnviz.report.engines.ray")


def engine_for(cfg) -> Callable:
    """The run function of ``cfg.engine``, after its own checks (e.g. that Ray is installed)."""
    module = import_module(ENGINES.get(cfg.engine))
    check = getattr(module, "check", None)
    if check is not None:
        check(cfg)
    return module.run


def check_cluster(cluster: Cluster | None) -> None:
    """Options of the ray engine that no runtime could satisfy."""
    if cluster is None:
        return
    if cluster.gpus < 0:
        raise BadInput("--num-gpus-per-worker must be 0 or more")
    if cluster.cpus is not None and cluster.cpus < 1:
        raise BadInput("the local Ray runtime needs at least 1 CPU")
