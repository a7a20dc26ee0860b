"""Comparing a current snapshot with its baseline: tolerances, per-head and attribution metrics, the verdict.

Pure: two Baselines in, an InputResult out. A NaN or an infinity on either side is drift, whatever the
tolerances say (a comparison with NaN is always false, so it would otherwise pass every threshold).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

from attnviz.errors import BadInput
from attnviz.snapshot.result import STACKS, AttrDiff, HeadDiff, InputResult
from attnviz.snapshot.store import Baseline


@dataclass(frozen=True)
class Tolerance:
    """How far a current value may be from its baseline; ``for_dtype`` gives defaults that fit the stored dtype."""

    max_abs: float = 1e-4  # largest |current - baseline| of one attention weight, per layer and head
    mean_abs: float = 1e-5  # mean |current - baseline| over a head's real query x key cells
    jsd: float = 1e-6  # largest Jensen-Shannon divergence (nats) between a baseline and a current row
    argmax: float = 1.0  # least share of rows whose top key agrees (a tie within max_abs agrees)
    attr_max: float = 1e-3  # largest |current - baseline| attribution, relative to max |baseline|
    attr_rank: float = 0.9  # least Spearman rank correlation of attribution scores over tokens

    @classmethod
    def for_dtype(cls, dtype: str, **overrides) -> "Tolerance":
        """Defaults that fit the stored dtype: float16 keeps ~3 significant digits (eps 9.8e-4)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise BadInput(f"unknown tolerance {unknown[0]!r}; known: {', '.join(sorted(known))}")
        base = _HALF if dtype == "float16" else cls()
        values = {}
        for name, value in overrides.items():
            if value is None:
                continue
            try:
                values[name] = float(value)
            except (TypeError, ValueError):
                raise BadInput(f"tolerance {name} must be a number, not {value!r}") from None
            if not values[name] >= 0:  # NaN too
                raise BadInput(f"tolerance {name} must be >= 0, not {value}")
        return replace(base, **values)


_HALF = Tolerance(max_abs=2e-3, mean_abs=5e-4, jsd=1e-4, argmax=1.0, attr_max=1e-2, attr_rank=0.9)
_SIDES = ("", "baseline", "current", "baseline and current")  # indexed by 1 * baseline + 2 * current


def _nonfinite(base: torch.Tensor, cur: torch.Tensor, dims: int) -> torch.Tensor:
    """Which side holds a NaN or an infinity in its last ``dims`` dimensions: an index into _SIDES.

    A sum is non-finite exactly when a term is (NaN and inf propagate; float64 cannot overflow on
    float32 or float16 terms), and it is cheaper than testing every element.
    """
    last = tuple(range(-dims, 0))
    bad_b = ~torch.isfinite(base.sum(last, dtype=torch.float64))
    bad_c = ~torch.isfinite(cur.sum(last, dtype=torch.float64))
    return bad_b.long() + 2 * bad_c.long()


def jensen_shannon(base: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence (nats) of each row pair: (..., K) -> (...), in float64.

    JSD = KL(b || m) / 2 + KL(c || m) / 2 with m = (b + c) / 2 (Lin 1991). float64 keeps both the tiny
    changes (a 1e-7 change gives a JSD near 1e-14) and the peaked rows (a key at 1e-13 on one side)
    that float32 rounds away.
    """
    tiny = torch.finfo(torch.float64).tiny
    b, c = base.double(), cur.double()
    m = ((b + c) / 2).clamp_min(tiny)  # a key neither side attends to: 0 / tiny, not 0 / 0
    # 0 log 0 = 0: the ratio is clamped to the smallest normal float64, so a key that one side never
    # attends to adds 0 * log(tiny) = 0 there, never 0 * -inf = NaN (and costs no masking).
    kl = b * torch.log((b / m).clamp_min(tiny)) + c * torch.log((c / m).clamp_min(tiny))  # (..., K)
    return (0.5 * kl.sum(-1)).clamp_min(0)  # rounding may leave -1e-17


def head_stats(base: torch.Tensor, cur: torch.Tensor, tol: Tolerance) -> dict[str, torch.Tensor]:
    """Per layer and head metrics of two (L, H, Q, K) stacks of the same shape, each (L, H) float64.

    ``nonfinite`` indexes _SIDES: which side holds a NaN or an infinity in that head.
    """
    bad = _nonfinite(base, cur, 2)  # (L, H)
    if torch.equal(base, cur):  # the usual CI case: nothing to measure (NaN never equals itself)
        zero = torch.zeros(base.shape[:2], dtype=torch.float64)
        return {"max_abs": zero, "mean_abs": zero, "jsd": zero, "argmax": torch.ones_like(zero), "nonfinite": bad}
    b, c = base.float(), cur.float()
    diff = (c - b).abs()  # (L, H, Q, K); float32 holds a difference of two weights in [0, 1] to 6e-8
    top = c.argmax(-1, keepdim=True)  # (L, H, Q, 1)
    # A changed argmax counts only when the baseline's own gap between the two keys exceeds max_abs.
    agree = b.gather(-1, top).squeeze(-1) >= b.amax(-1) - tol.max_abs  # (L, H, Q)
    return {"max_abs": diff.amax(dim=(-1, -2)).double(), "mean_abs": diff.mean(dim=(-1, -2), dtype=torch.float64),
            "jsd": jensen_shannon(b, c).amax(-1), "argmax": agree.double().mean(-1), "nonfinite": bad}


def severity(stats: dict[str, torch.Tensor], tol: Tolerance) -> torch.Tensor:
    """(L, H): the largest metric-to-tolerance ratio; an argmax shortfall counts as > 1, a non-finite head as inf."""
    sev = torch.zeros_like(stats["max_abs"])
    for name in ("max_abs", "mean_abs", "jsd"):
        limit = getattr(tol, name)
        ratio = stats[name] / limit if limit > 0 else torch.where(stats[name] > 0, math.inf, 0.0)
        sev = torch.maximum(sev, ratio)
    short = (tol.argmax - stats["argmax"]).clamp_min(0)
    sev = torch.where(short > 1e-12, torch.maximum(sev, 1 + short), sev)
    return torch.where(stats["nonfinite"] > 0, math.inf, sev)


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
    if res.status == "ok" and (res.heads or res.drifting_attrs):
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
    sev = severity(stats, tol)  # (L, H)
    layers, heads = base.maps.layers, base.maps.heads
    values = {k: stats[k].tolist() for k in ("max_abs", "mean_abs", "jsd", "argmax")}
    sides, rows = stats["nonfinite"].tolist(), sev.tolist()

    def diff(li: int, hi: int) -> HeadDiff:
        return HeadDiff(res.key, stack, layers[li], heads[hi], *(values[k][li][hi] for k in values), rows[li][hi],
                        _SIDES[sides[li][hi]])

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
        side = _SIDES[int(_nonfinite(b64, c64, 1))]
        rel = float((c64 - b64).abs().max() / b64.abs().max().clamp_min(1e-12)) if b.numel() else 0.0
        rank = spearman(b64, c64)
        if side:
            sev = math.inf
        else:
            ratio = rel / tol.attr_max if tol.attr_max > 0 else (math.inf if rel > 0 else 0.0)
            sev = max(ratio, 1 + (tol.attr_rank - rank) if rank < tol.attr_rank else 0.0)
        res.attrs.append(AttrDiff(res.key, method, rel, rank, sev, side))
