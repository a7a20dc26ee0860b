"""Training-step time of each trained toy: one thread (what `attnviz toy train` uses) against two.

Prints, per toy, milliseconds per step (CPU time and wall time) and the ratio two threads / one
thread, both measured in this run, plus the projected time of a full training run.
Run: python benchmarks/bench_toys.py [--steps N]
"""

from __future__ import annotations

import argparse
import time

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
    args = parser.parse_args()
    print(f"{'toy':15} {'1 thread ms (cpu/wall)':>24} {'2 threads ms (cpu/wall)':>25} {'wall ratio 2/1':>15} {'full run s':>11}")
    for name, recipe in RECIPES.items():
        per_step(name, 1, 3)  # warm-up
        c1, w1 = per_step(name, 1, args.steps)
        c2, w2 = per_step(name, 2, args.steps)
        print(f"{name:15} {c1 * 1e3:11.1f}/{w1 * 1e3:<11.1f} {c2 * 1e3:12.1f}/{w2 * 1e3:<11.1f} "
              f"{w2 / w1:15.2f} {recipe.steps * w1:11.0f}")


if __name__ == "__main__":
    main()
