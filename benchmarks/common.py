"""What every benchmark shares: interleaved timing, per-round ratios with their median and range, the
peak memory of a call measured in a child process, and a bootstrap interval for paired differences.

Runs are interleaved (baseline, candidate, candidate, baseline, ...) so that both sides see the same
load on a shared machine; a ratio is taken per round, and its median and range are reported. Best-of-N
is not used: it rewards whichever side was lucky once.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

# `python3 benchmarks/bench_x.py` from a checkout: the package beside this folder, installed or not
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _sync(device) -> None:
    if device is not None and getattr(device, "type", str(device)).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def clock(fn: Callable, *args, device=None) -> tuple[float, Any]:
    """(seconds, result) of one call of ``fn(*args)``; on CUDA the queued work is waited for."""
    _sync(device)
    start = time.perf_counter()
    out = fn(*args)
    _sync(device)
    return time.perf_counter() - start, out


def interleaved(cases: dict[str, Callable], repeat: int, *, device=None,
                setup: Callable | None = None) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Run every case once per round, the order rotated each round; (seconds per case per round, last results).

    ``setup``, when given, is called (untimed) before every single call and its value passed to the
    case: a fresh input or context per call, so that no call is served from an earlier one's cache.
    """
    names = list(cases)
    times: dict[str, list[float]] = {n: [] for n in names}
    last: dict[str, Any] = {}
    for r in range(repeat):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            args = () if setup is None else (setup(),)
            seconds, last[name] = clock(cases[name], *args, device=device)
            times[name].append(seconds)
    return times, last


@dataclass(frozen=True)
class Ratio:
    """Per-round ratios of two interleaved series: candidate / baseline, or anything divided pairwise."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, top: list[float], bottom: list[float]) -> "Ratio":
        return cls(tuple(a / b for a, b in zip(top, bottom)))

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def __str__(self) -> str:
        low, high = min(self.values), max(self.values)
        return f"{self.median:.2f} (range {low:.2f}-{high:.2f}, {len(self.values)} pairs)"


def median_ms(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1e3:8.1f} ms"


# --- peak memory of a call, in a child process -------------------------------------------------------

PEAK_MARK = "peak-bytes:"


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def report_peak(fn: Callable) -> None:
    """In a child: print how far the resident set rose above where it stood, at its highest, during ``fn()``.

    torch's CPU allocator is invisible to tracemalloc, so the process's own high-water mark is read.
    Linux lets a process reset that mark (/proc/self/clear_refs, "5"); where it cannot, the mark since
    start-up is used, which only counts if ``fn`` rises above everything before it.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    before = _status_kib("VmRSS")
    fn()
    top = _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"{PEAK_MARK}{(top - (before or 0)) * 1024}", flush=True)


def child_peak(argv: list[str]) -> int:
    """Run ``python3 argv...`` (a script that calls ``report_peak``) and return the peak bytes it printed."""
    run = subprocess.run([sys.executable, *argv], capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{run.stderr[-2000:]}")
    out = run.stdout
    return int(next(line for line in out.splitlines() if line.startswith(PEAK_MARK))[len(PEAK_MARK):])


def bootstrap_interval(diff: np.ndarray, rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of the mean of paired differences ``diff`` (n,), pairs resampled."""
    rng = np.random.default_rng(seed)
    means = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(rounds)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))
