"""Training-step time of each trained toy: one thread (what `attnviz toy train` uses) against two.

Prints, per toy, milliseconds per step (CPU time and wall time) and the ratio two threads / one
thread, both measured in this run (one and two threads interleaved, the ratio the median of per-pair ratios with
its range), plus the projected time of a full training run on one thread.
Run: python3 benchmarks/bench_toys.py [--steps N] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import Ratio, interleaved

import torch

from attnviz.models.toys.data import generate
from attnviz.models.toys.recipes import RECIPES
from attnviz.models.toys.toy import build_toy
from attnviz.models.toys.train import _take, loss_of, tensors


def per_step(name: str, threads: int, steps: int) -> tuple[float, float]:
    """(cpu seconds, wall seconds) per optimiser step."""
    recipe = RECIPES[name]
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = build_toy(recipe.config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr)
    data = tensors(recipe, generate(name, 512, 0))
    gen = torch.Generator().manual_seed(0)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(steps):
        batch = _take(data, torch.randint(0, 512, (recipe.batch,), generator=gen))
        loss = loss_of(recipe, model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.process_time() - cpu) / steps, (time.perf_counter() - wall) / steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved pairs")
    args = parser.parse_args()
    print(f"{'toy':15} {'1 thread ms (cpu/wall)':>24} {'2 threads ms (cpu/wall)':>25} {'wall ratio 2/1':>34} {'full run s':>11}")
    for name, recipe in RECIPES.items():
        per_step(name, 1, 3)  # warm-up
        out: dict[int, list] = {1: [], 2: []}  # threads -> (cpu, wall) per step, one per round
        interleaved({t: (lambda t=t: out[t].append(per_step(name, t, args.steps))) for t in (1, 2)}, args.repeat)
        (c1, w1), (c2, w2) = ([statistics.median(x) for x in zip(*out[t])] for t in (1, 2))
        ratio = Ratio.of([w for _, w in out[2]], [w for _, w in out[1]])
        print(f"{name:15} {c1 * 1e3:11.1f}/{w1 * 1e3:<11.1f} {c2 * 1e3:12.1f}/{w2 * 1e3:<11.1f} "
              f"{str(ratio):>34} {recipe.steps * w1:11.0f}")

if __name__ == "__main__":
    main()
