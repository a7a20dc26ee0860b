"""Comparing a current snapshot with its baseline: per-head metrics, attribution metrics, the verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from attnviz.snapshot.store import Baseline, Tolerance

STACKS = ("encoder", "decoder", "cross")
CONTEXT = ("model", "weights_hash", "tokenizer_hash", "kind", "backend", "device", "dtype", "store_dtype",
           "attnviz", "torch", "transformers")


@dataclass
class HeadDiff:
    key: str  # input key
    stack: str
    layer: int
    head: int
    max_abs: float
    mean_abs: float
    jsd: float
    argmax: float
    severity: float  # largest value / tolerance ratio over the metrics; > 1 is drift


@dataclass
class AttrDiff:
    key: str
    method: str
    max_rel: float  # max |current - baseline| / max |baseline|
    rank: float  # Spearman rank correlation over tokens
    severity: float


@dataclass
class InputResult:
    key: str
    text: str
    status: str  # ok | drift | tokens (the tokenization changed) | shape (layers, heads or methods differ)
    heads: list[HeadDiff] = field(default_factory=list)  # the heads out of tolerance, worst first
    attrs: list[AttrDiff] = field(default_factory=list)  # every method compared
    worst: HeadDiff | None = None  # the head closest to (or furthest past) its tolerance
    message: str = ""
    pair: tuple[Baseline, Baseline] | None = None  # (baseline, current), kept for drift reports


@dataclass
class CheckResult:
    tolerance: Tolerance
    inputs: list[InputResult]
    missing: list[str] = field(default_factory=list)  # inputs that have no baseline
    unused: list[str] = field(default_factory=list)  # baseline files that no input uses
    context: list[tuple[str, str, str]] = field(default_factory=list)  # (field, baseline, current) that differ

    @property
    def failed(self) -> list[InputResult]:
        return [r for r in self.inputs if r.status != "ok"]

    @property
    def ok(self) -> bool:
        return not self.failed

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
        """(stack, layer, drifting input-head pairs, largest max |Δ|, largest severity), in model order."""
        found: dict[tuple[str, int], list[HeadDiff]] = {}
        for r in self.inputs:
            for h in r.heads:
                found.setdefault((h.stack, h.layer), []).append(h)
        rows = [(s, l, len(hs), max(h.max_abs for h in hs), max(h.severity for h in hs)) for (s, l), hs in found.items()]
        return sorted(rows, key=lambda row: (STACKS.index(row[0]), row[1]))

    def summary(self) -> str:
        n = len(self.inputs)
        if self.ok:
            worst = max((r.worst for r in self.inputs if r.worst), key=lambda h: h.severity, default=None)
            margin = f"; the closest head used {worst.severity:.1%} of its tolerance" if worst else ""
            return f"ok: {n} inputs within tolerance{margin}"
        parts = [f"drift in {len(self.failed)} of {n} inputs"]
        for stack, layers in self.drifting_layers().items():
            parts.append(f"{stack} layers {', '.join(map(str, layers))} (first drifting layer: {layers[0]})")
        tokens = sum(r.status == "tokens" for r in self.inputs)
        if tokens:
            parts.append(f"{tokens} inputs tokenize differently")
        attrs = sorted({a.method for r in self.inputs for a in r.attrs if a.severity > 1})
        if attrs:
            parts.append(f"attributions drift: {', '.join(attrs)}")
        return "; ".join(parts)


def _ratio(value: float, tol: float) -> float:
    if tol > 0:
        return value / tol
    return math.inf if value > 0 else 0.0


def head_stats(base: torch.Tensor, cur: torch.Tensor, tol: Tolerance) -> dict[str, torch.Tensor]:
    """Per layer and head metrics of two (L, H, Q, K) stacks of the same shape."""
    if torch.equal(base, cur):  # the usual CI case: nothing to measure
        zero = torch.zeros(base.shape[:2], dtype=torch.float64)
        return {"max_abs": zero, "mean_abs": zero, "jsd": zero, "argmax": torch.ones_like(zero)}
    b, c = base.float(), cur.float()
    diff = (c - b).abs()
    # Jensen-Shannon divergence per row (Lin 1991), the mean KL of both rows to their midpoint m, with
    # log(b/m) = log1p((b-c)/2m): exact for tiny changes, where log(b) - log(m) would cancel in float32.
    half = (b - c) / (b + c).clamp_min(torch.finfo(torch.float32).tiny)  # (b - m) / m
    kl = torch.where(b > 0, b * torch.log1p(half), 0.0) + torch.where(c > 0, c * torch.log1p(-half), 0.0)  # (L, H, Q, K)
    top = c.argmax(-1, keepdim=True)  # (L, H, Q, 1)
    # A changed argmax counts only when the baseline's own gap between the two keys exceeds max_abs.
    agree = b.gather(-1, top).squeeze(-1) >= b.amax(-1) - tol.max_abs  # (L, H, Q)
    return {
        "max_abs": diff.amax(dim=(-1, -2)).double(), "mean_abs": diff.double().mean(dim=(-1, -2)),
        "jsd": (0.5 * kl.double().sum(-1)).clamp_min(0).amax(-1), "argmax": agree.double().mean(-1),
    }


def _severity(stats: dict[str, torch.Tensor], tol: Tolerance) -> torch.Tensor:
    """(L, H): the largest metric-to-tolerance ratio; an argmax shortfall always counts as > 1."""
    sev = torch.zeros_like(stats["max_abs"])
    for name in ("max_abs", "mean_abs", "jsd"):
        limit = getattr(tol, name)
        ratio = stats[name] / limit if limit > 0 else torch.where(stats[name] > 0, math.inf, 0.0)
        sev = torch.maximum(sev, ratio)
    short = (tol.argmax - stats["argmax"]).clamp_min(0)
    return torch.where(short > 1e-12, torch.maximum(sev, 1 + short), sev)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Rank correlation of two score vectors (ties broken by position); 1.0 for fewer than 2 scores."""
    if a.numel() < 2:
        return 1.0
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-12))


def _first_change(a: list[str], b: list[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"token {i}: {x!r} -> {y!r}"
    return f"{len(a)} -> {len(b)} tokens"


def compare(base: Baseline, cur: Baseline, tol: Tolerance) -> InputResult:
    """Verdict for one input; a change of tokens is reported as such, never as a number."""
    bm, cm = base.maps, cur.maps
    res = InputResult(base.key, base.text, "ok")
    for side, bt, ct in (("tokens", bm.tokens, cm.tokens), ("decoder tokens", bm.decoder_tokens, cm.decoder_tokens)):
        if bt != ct:
            res.status, res.message = "tokens", f"{side} changed ({_first_change(bt[0], ct[0])})"
            return res
    if (bm.layers, bm.heads) != (cm.layers, cm.heads):
        res.status, res.message = "shape", "captured layers or heads differ from the baseline's"
        return res
    for stack in STACKS:
        _compare_stack(res, base, cur, stack, tol)
    _compare_attrs(res, base, cur, tol)
    res.heads.sort(key=lambda h: -h.severity)
    if res.status == "ok" and (res.heads or any(a.severity > 1 for a in res.attrs)):
        res.status = "drift"
    if res.status != "ok":
        res.pair = (base, cur)
    return res


def _compare_stack(res: InputResult, base: Baseline, cur: Baseline, stack: str, tol: Tolerance) -> None:
    b, c = _stack(base, stack), _stack(cur, stack)
    if b is None and c is None:
        return
    if b is None or c is None or b.shape != c.shape:
        res.status, res.message = "shape", f"the {stack} attention differs in shape from the baseline's"
        return
    stats = head_stats(b[:, 0], c[:, 0], tol)  # (L, 1, H, Q, K) -> (L, H, Q, K)
    sev = _severity(stats, tol)
    layers, heads = base.maps.layers, base.maps.heads
    values = {k: v.tolist() for k, v in stats.items()}
    rows = sev.tolist()

    def diff(li: int, hi: int) -> HeadDiff:
        return HeadDiff(res.key, stack, layers[li], heads[hi], *(values[k][li][hi] for k in values), rows[li][hi])

    for li, hi in torch.nonzero(sev > 1).tolist():
        res.heads.append(diff(li, hi))
    flat = int(sev.argmax())
    worst = diff(flat // sev.shape[1], flat % sev.shape[1])
    if res.worst is None or worst.severity > res.worst.severity:
        res.worst = worst


def _stack(base: Baseline, stack: str) -> torch.Tensor | None:
    return {"encoder": base.maps.weights, "decoder": base.maps.decoder, "cross": base.maps.cross}[stack]


def _compare_attrs(res: InputResult, base: Baseline, cur: Baseline, tol: Tolerance) -> None:
    for method, b in base.attributions.items():
        c = cur.attributions.get(method)
        if c is None or c.shape != b.shape:
            res.status, res.message = "shape", f"attribution {method} is missing or differs in shape"
            continue
        b64, c64 = b.double(), c.double()
        rel = float((c64 - b64).abs().max() / b64.abs().max().clamp_min(1e-12)) if b.numel() else 0.0
        rank = spearman(b64, c64)
        sev = max(_ratio(rel, tol.attr_max), 1 + (tol.attr_rank - rank) if rank < tol.attr_rank else 0.0)
        res.attrs.append(AttrDiff(res.key, method, rel, rank, sev))


def context_changes(base: dict, cur: dict) -> list[tuple[str, str, str]]:
    """Fields of two manifests that differ: shown beside a verdict, never a verdict by themselves.

    A field the current manifest leaves as None (a hash not computed) is not compared.
    """
    return [(k, str(base.get(k, "")), str(cur[k])) for k in CONTEXT
            if cur.get(k) is not None and base.get(k) != cur[k]]
