"""Numbers per item (entropy, most-attended tokens, prediction, attribution top-k) and summary.json/csv."""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from attnviz.io import finite, json_bytes

TOP_K = 5  # most-attended tokens and attribution tokens kept per item
# Tokens that absorb attention in almost every head (arXiv:1906.04341); excluded from "most attended".
SINKS = {"[CLS]", "[SEP]", "[PAD]", "<s>", "</s>", "<pad>", "[BOS]", "[EOS]", "[DIST]"}


def head_entropy(weights: np.ndarray) -> np.ndarray:
    """(L, H, n, n) -> (L, H): mean over query rows of each row's entropy, in nats."""
    p = np.clip(weights.astype(np.float64), 1e-12, 1.0)
    rows = -(weights * np.log(p)).sum(axis=-1)  # (L, H, n)
    return rows.mean(axis=-1)


def most_attended(weights: np.ndarray, tokens: list[str], special: set[str], k: int = TOP_K) -> list[dict]:
    """Tokens that receive the most attention, averaged over layers, heads and queries; sinks left out."""
    received = weights.mean(axis=(0, 1, 2))  # (n,) mean attention each key receives
    skip = special | SINKS
    order = [i for i in np.argsort(-received, kind="stable") if tokens[i] not in skip]
    return [{"index": int(i), "token": tokens[i], "weight": round(float(received[i]), 4)} for i in order[:k]]


def top_tokens(scores: np.ndarray, tokens: list[str], k: int = TOP_K) -> list[dict]:
    """Tokens with the largest absolute attribution, sign kept."""
    order = np.argsort(-np.abs(scores), kind="stable")[:k]
    return [{"index": int(i), "token": tokens[i], "score": round(float(scores[i]), 4)} for i in order]


def public(record: dict) -> dict:
    """The summary part of an item record: everything but the HTML payload."""
    return {k: v for k, v in record.items() if k not in ("view", "thumb", "image_data", "cam")}


def flag_non_finite(record: dict) -> dict:
    """The record with NaN and infinities as null, and ``non_finite`` naming where they were (the item is flagged)."""
    clean, bad = finite({k: v for k, v in record.items() if k != "non_finite"})
    bad = [*(record.get("non_finite") or []), *bad]  # a record read back keeps the flag it was written with
    return {**clean, "non_finite": bad} if bad else clean


def summary_files(records: list[dict], skipped: list[dict], meta: dict) -> dict[str, bytes]:
    """summary.json (everything) and summary.csv (one flat row per item), rendered before either is written."""
    counts = {"done": len(records), "skipped": len(skipped)}
    flagged = sum(1 for r in records if r.get("non_finite"))
    doc = {**meta, "items": [public(r) for r in records], "skipped": skipped,
           "counts": {**counts, "non_finite": flagged} if flagged else counts}
    return {"summary.json": json_bytes(doc, indent=1), "summary.csv": _csv(records, skipped).encode("utf-8")}


def _csv(records: list[dict], skipped: list[dict]) -> str:
    methods = sorted({m for r in records for m in r.get("attribution", {})})
    head = ["id", "status", "text", "tokens", "prediction", "probability", "target", "mean_entropy", "most_attended"]
    head += [f"{m}_top" for m in methods] + [f"{m}_faithfulness" for m in methods] + ["error"]
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(head)
    for r in records:
        pred = r.get("prediction") or {}
        attr = r.get("attribution", {})
        present = pred.get("present")  # a multi-label model: every class above one half
        label = ", ".join(c["label"] for c in present) if present else pred.get("label", "")
        row = [r["id"], "ok", r.get("text") or r.get("image") or "", len(r["tokens"]), label,
               pred.get("probability", ""), r.get("target") or "", r.get("mean_entropy", ""),
               " ".join(t["token"] for t in r.get("most_attended", []))]
        row += [" ".join(t["token"] for t in attr.get(m, {}).get("top", [])) for m in methods]
        note = f"non-finite values: {', '.join(r['non_finite'])}" if r.get("non_finite") else ""
        row += [_number(attr.get(m, {}).get("faithfulness")) for m in methods] + [note]
        out.writerow([_cell(v) for v in row])
    for s in skipped:
        blank = [""] * (len(head) - 4)
        out.writerow([_cell(v) for v in [s["id"], "skipped", s.get("text") or "", *blank, s["error"]]])
    return buf.getvalue()


def _number(value) -> str:
    if isinstance(value, dict):  # e.g. {"comprehensiveness": .., "sufficiency": ..}
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


def _cell(value) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas; a leading quote keeps them text."""
    text = str(value)
    # Spreadsheets skip leading spaces before they look for a formula.
    return "'" + text if text.lstrip(" ")[:1] in ("=", "+", "-", "@", "\t", "\r") else text
