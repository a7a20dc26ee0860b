"""attn-grad against rollout on toy-shapes: positive-perturbation AUC paired per scene, by number of shapes.

`attnviz bench faithfulness` prints each method's mean. Comparing two methods needs more: the paired
difference per scene with a 95% bootstrap interval, and the same split by how many shapes a scene holds,
since a class-specific map can only beat a class-agnostic one where there is another shape to ignore.
Give a weights file from `attnviz toy train toy-shapes --seed N --out FILE` to compare training seeds.

    python3 benchmarks/bench_faithfulness.py [--model toy-shapes | FILE.safetensors] [--n 900] [--device cpu]
"""

from __future__ import annotations

import argparse

from common import bootstrap_interval

import numpy as np

from attnviz.attribution.faithfulness import images as fv
from attnviz.models import load_model
from attnviz.models.toys.data import generate, heldout_seed

METHODS = ["attn-grad", "rollout"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy-shapes", help="toy-shapes or a weights file trained for it")
    parser.add_argument("--n", type=int, default=900, help="held-out scenes")
    parser.add_argument("--seed", type=int, default=0, help="which held-out scenes (as bench faithfulness)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    loaded = load_model(args.model, device=args.device)
    data = fv.toy_examples("toy-shapes", args.n, args.seed)
    shapes = np.array([len(e["labels"]) for e in generate("toy-shapes", args.n, heldout_seed(args.seed))])
    rows = {r.method: r for r in fv.evaluate(loaded, data, METHODS, batch_size=64, seed=args.seed)}
    auc = {m: np.asarray(rows[m].positive_each) for m in rows}
    hit = {m: np.asarray(rows[m].pointing_each, dtype=float) for m in rows}

    print(f"{args.model}: {args.n} held-out scenes, positive-perturbation AUC (lower is better)")
    names = (*METHODS, fv.RANDOM, fv.TRUTH)
    print(f"{'shapes':>6} {'scenes':>6} " + " ".join(f"{m:>12}" for m in names)
          + f" {'attn-grad - rollout':>20} {'95% interval':>18} {'pointing: attn-grad':>20} {'rollout':>8}")
    for k in ("all", *sorted(set(shapes.tolist()))):
        pick = np.ones(len(shapes), bool) if k == "all" else shapes == k
        diff = auc["attn-grad"][pick] - auc["rollout"][pick]
        low, high = bootstrap_interval(diff)
        means = " ".join(f"{auc[m][pick].mean():12.4f}" for m in names)
        print(f"{k!s:>6} {pick.sum():6d} {means} {diff.mean():+20.4f} {low:+8.4f} to {high:+.4f} "
              f"{hit['attn-grad'][pick].mean():20.3f} {hit['rollout'][pick].mean():8.3f}")


if __name__ == "__main__":
    main()
