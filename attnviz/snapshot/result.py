"""The verdict of a snapshot check, and the words and numbers every output of it shows.

The terminal table, the JUnit XML, the Markdown summary and diff.html all word a drifting head, a drifting
attribution and a non-finite value through the functions here, so that they never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attnviz.snapshot.compare import Tolerance
    from attnviz.snapshot.store import Baseline

STACKS = ("encoder", "decoder", "cross")
HEAD_COLUMNS = ("stack", "layer", "head", "max |Δ|", "mean |Δ|", "JSD", "argmax", "× tolerance")


@dataclass
class HeadDiff:
    """One head of one input, compared over its real query x key cells."""

    key: str  # input key
    stack: str  # encoder | decoder | cross
    layer: int
    head: int
    max_abs: float
    mean_abs: float
    jsd: float  # largest row-wise Jensen-Shannon divergence, nats
    argmax: float  # share of rows whose top key agrees
    severity: float  # largest value / tolerance ratio over the metrics; > 1 is drift (inf: non-finite)
    nonfinite: str = ""  # "", "baseline", "current" or "baseline and current": which side holds NaN or Inf

    @property
    def problem(self) -> str:
        """What is wrong with this head, in words: the non-finite side, or how far past its tolerance."""
        if self.nonfinite:
            return f"non-finite values in the {self.nonfinite}"
        return f"{self.severity:.3g}x tolerance"


@dataclass
class AttrDiff:
    """One attribution method on one input."""

    key: str
    method: str
    max_rel: float  # max |current - baseline| / max |baseline|
    rank: float  # Spearman rank correlation over tokens
    severity: float
    nonfinite: str = ""  # as HeadDiff.nonfinite

    @property
    def problem(self) -> str:
        if self.nonfinite:
            return f"non-finite values in the {self.nonfinite}"
        return f"max |Δ|/max {self.max_rel:.3g}, rank {self.rank:.3f}"


@dataclass
class InputResult:
    """The verdict on one input, with what drifted."""

    key: str
    text: str
    status: str  # ok | drift | tokens (the tokenization changed) | shape (layers, heads or methods differ)
    heads: list[HeadDiff] = field(default_factory=list)  # the heads out of tolerance, worst first
    attrs: list[AttrDiff] = field(default_factory=list)  # every method compared
    worst: HeadDiff | None = None  # the head closest to (or furthest past) its tolerance
    message: str = ""
    pair: tuple[Baseline, Baseline] | None = None  # (baseline, current), kept for drift reports

    @property
    def drifting_attrs(self) -> list[AttrDiff]:
        return [a for a in self.attrs if a.severity > 1]

    def headline(self) -> str:
        """One line that says why this input failed ("" when it did not)."""
        if self.status == "ok":
            return ""
        if self.message:
            return self.message
        if self.heads:
            h = self.heads[0]
            return f"{h.stack} layer {h.layer} head {h.head}: {h.problem}"
        a = self.drifting_attrs[0]
        return f"attribution {a.method}: {a.problem}"


@dataclass
class CheckResult:
    """The verdict of a whole check: ``ok``, one line of ``summary()``, and the worst heads for the tables."""

    tolerance: Tolerance
    inputs: list[InputResult]
    missing: list[str] = field(default_factory=list)  # inputs that have no baseline
    unused: list[str] = field(default_factory=list)  # the manifest's baselines that no input uses
    context: list[tuple[str, str, str]] = field(default_factory=list)  # (field, baseline, current) that differ

    @property
    def failed(self) -> list[InputResult]:
        return [r for r in self.inputs if r.status != "ok"]

    @property
    def ok(self) -> bool:
        return bool(self.inputs) and not self.failed

    def worst_heads(self, n: int = 10) -> list[HeadDiff]:
        heads = [h for r in self.inputs for h in r.heads]
        return sorted(heads, key=lambda h: -h.severity)[:n]

    def drifting_layers(self) -> dict[str, list[int]]:
        """stack -> the layers with a head out of tolerance on some input."""
        found: dict[str, set[int]] = {}
        for r in self.inputs:
            for h in r.heads:
                found.setdefault(h.stack, set()).add(h.layer)
        return {s: sorted(v) for s, v in found.items()}

    def by_layer(self) -> list[tuple[str, int, int, float, float]]:
        """(stack, layer, drifting input-head pairs, largest finite max |Δ| (NaN: none), largest severity), in model order."""
        found: dict[tuple[str, int], list[HeadDiff]] = {}
        for r in self.inputs:
            for h in r.heads:
                found.setdefault((h.stack, h.layer), []).append(h)
        rows = [(s, l, len(hs), max((h.max_abs for h in hs if not h.nonfinite), default=math.nan),
                 max(h.severity for h in hs)) for (s, l), hs in found.items()]
        return sorted(rows, key=lambda row: (STACKS.index(row[0]), row[1]))

    def summary(self) -> str:
        """One line: "ok: ..." with the margin of the closest head, or what drifted and where first."""
        n = len(self.inputs)
        if not n:
            return "no inputs were checked"
        if self.ok:
            worst = max((r.worst for r in self.inputs if r.worst), key=lambda h: h.severity, default=None)
            margin = f"; the closest head used {worst.severity:.1%} of its tolerance" if worst else ""
            return f"ok: {n} inputs within tolerance{margin}"
        parts = [f"drift in {len(self.failed)} of {n} inputs"]
        for stack, layers in self.drifting_layers().items():
            parts.append(f"{stack} layers {', '.join(map(str, layers))} (first drifting layer: {layers[0]})")
        for side in ("baseline", "current"):
            count = sum(any(side in d.nonfinite for d in (*r.heads, *r.attrs)) for r in self.inputs)
            if count:
                parts.append(f"non-finite values in the {side} of {count} inputs")
        tokens = sum(r.status == "tokens" for r in self.inputs)
        if tokens:
            parts.append(f"{tokens} inputs tokenize differently")
        attrs = sorted({a.method for r in self.inputs for a in r.drifting_attrs})
        if attrs:
            parts.append(f"attributions drift: {', '.join(attrs)}")
        return "; ".join(parts)


def short(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def number(value: float, spec: str = ".3g") -> str:
    """``value`` formatted; NaN (nothing to measure) is "n/a", an infinity "∞"."""
    return format(value, spec) if math.isfinite(value) else ("n/a" if math.isnan(value) else "∞")


def head_cells(h: HeadDiff) -> list[str]:
    """The cells of one row under HEAD_COLUMNS, as text; a non-finite head has no numbers to show."""
    if h.nonfinite:
        return [h.stack, str(h.layer), str(h.head), *["n/a"] * 4, f"non-finite ({h.nonfinite})"]
    return [h.stack, str(h.layer), str(h.head), number(h.max_abs), number(h.mean_abs), number(h.jsd),
            number(h.argmax, ".1%"), number(h.severity)]


def failure_lines(r: InputResult, limit: int = 20) -> list[str]:
    """Every reason one input failed, one line each: its drifting heads (up to ``limit``), then attributions."""
    if r.status in ("tokens", "shape"):
        return [r.message]
    lines = [f"{h.stack} layer {h.layer} head {h.head}: " + (h.problem if h.nonfinite else
             f"max|d| {h.max_abs:.3g}, mean|d| {h.mean_abs:.3g}, JSD {h.jsd:.3g}, argmax {h.argmax:.1%} "
             f"({h.problem})") for h in r.heads[:limit]]
    lines += [f"attribution {a.method}: {a.problem}" for a in r.drifting_attrs]
    more = len(r.heads) - limit
    return lines + ([f"... and {more} more heads"] if more > 0 else [])
