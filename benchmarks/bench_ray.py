"""The Ray engine against the local engine: same MiniLM sentences, same work (capture, one head-view PNG per
item, item.json, summaries, report.html), interleaved pairs, each run into a new folder.

    python3 benchmarks/bench_ray.py [--sizes 200,2000] [--workers 2] [--repeat 2]

Every Ray run starts its own local runtime and shuts it down, as `attnviz report --engine ray` without
--address does, so the start-up is in its time. Reported: the overhead ratio ray/local per size (target
<= 1.3x at 2,000), items per second per worker, and the scaling of the Ray engine from 1 to 2 workers.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
from pathlib import Path

from common import Ratio, interleaved

from bench_report import sentences


def run(loaded, texts: list[str], out: Path, engine: str, workers: int) -> None:
    from attnviz.models import LoadOptions
    from attnviz.report.batch import ReportConfig, run_report
    from attnviz.report.engines import Cluster
    from attnviz.report.inputs import Item

    items = [Item(str(i), t) for i, t in enumerate(texts)]
    cluster = Cluster(model="minilm", load=LoadOptions(device="cpu")) if engine == "ray" else None
    run_report(loaded, items, ReportConfig(out=out, workers=workers, engine=engine, cluster=cluster))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="200,2000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="interleaved rounds per size")
    args = parser.parse_args()
    import os

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    from attnviz.models import load_model

    loaded = load_model("minilm", device="cpu")
    w = args.workers
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run(loaded, sentences(16), tmp / "warm", "local", 0)  # first-call costs out of every timing
        folders = (tmp / str(i) for i in itertools.count())
        for n in (int(s) for s in args.sizes.split(",")):
            texts = sentences(n)
            cases = {"local": lambda out: run(loaded, texts, out, "local", w),
                     "ray": lambda out: run(loaded, texts, out, "ray", w)}
            if n == max(int(s) for s in args.sizes.split(",")):
                cases["ray1"] = lambda out: run(loaded, texts, out, "ray", 1)
            times, _ = interleaved(cases, args.repeat, setup=lambda: next(folders))
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"{n} items, {args.repeat} interleaved rounds, medians")
            print(f"  local engine, {w} workers   {n / med['local']:6.1f} items/s")
            print(f"  ray engine, {w} actors      {n / med['ray']:6.1f} items/s  ({n / med['ray'] / w:.1f} per actor, "
                  "runtime start-up included)")
            print(f"  overhead ray/local        {Ratio.of(times['ray'], times['local'])}")
            if "ray1" in times:
                print(f"  ray engine, 1 actor       {n / med['ray1']:6.1f} items/s")
                print(f"  scaling 1 -> {w} actors     {Ratio.of(times['ray1'], times['ray'])} (time 1 / time {w})")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
