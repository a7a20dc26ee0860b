"""The attribution report: one self-contained HTML file, PNG/SVG/PDF figures, or JSON.

The HTML needs no network: styles are inline, the bar charts are SVG data URIs, there is no script,
and every string from the input or the model is escaped.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from attnviz.attribution.results import Attribution
from attnviz.render.colors import colour_hex
from attnviz.render.attribution import CMAP, AttributionView, attribution_figure, bars_figure, normalised
from attnviz.render.output import figure_bytes
from attnviz.io import check_writable, inside, write_atomic
from attnviz.report.html import CSP, page_format

COLUMNS = ["method", "deletion AUC", "insertion AUC", "top-1", "top-k"]


def pick_format(out: Path) -> str:
    return page_format(out, "report")


def _real(attr: Attribution, e: int, special: frozenset = frozenset()) -> list[int]:
    """Positions shown: real tokens, without the special ones when ``special`` names them."""
    toks = attr.tokens[e]
    return [i for i, m in enumerate(attr.mask[e].tolist()) if m > 0 and toks[i] not in special]


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v:.3g}"  # significant digits: 1.2e-05, not 0.000


def faith_rows(attrs: list[Attribution], e: int) -> list[list[str]]:
    rows = []
    for a in attrs:
        f = (a.extra.get("faithfulness") or [None] * (e + 1))[e]
        if f is not None:
            rows.append([a.method, _fmt(f["deletion_auc"]), _fmt(f["insertion_auc"]), _fmt(f["top1"]), _fmt(f["topk"])])
    return rows


def views(attrs: list[Attribution], model: str, special: list[str] = ()) -> list[AttributionView]:
    """One view per example; special tokens ([CLS], [SEP], ...) are left out of the pictures."""
    first, out = attrs[0], []
    for e in range(len(first.tokens)):
        idx = _real(first, e, frozenset(special)) or _real(first, e)
        tokens = [first.tokens[e][i] for i in idx]
        scores = {a.method: [float(a.scores[e, i]) for i in idx] for a in attrs}
        sep = " " if any(len(t) > 1 for t in tokens) else ""  # word pieces get spaces, characters none
        text = sep.join(tokens) if len(tokens) <= 60 else sep.join(tokens[:59]) + "…"
        sub = f"target: {first.target[e]} · prediction: {first.prediction[e]} · p = {first.probability[e]:.3g}"
        out.append(AttributionView(tokens, scores, f"{model} · {text}", sub, faith_rows(attrs, e), COLUMNS))
    return out


def to_json(attrs: list[Attribution], model: str, task: str) -> dict:
    from attnviz import __version__

    first = attrs[0]
    examples = []
    for e in range(len(first.tokens)):
        idx = _real(first, e)
        examples.append({
            "tokens": [first.tokens[e][i] for i in idx],
            **({"pieces": [first.pieces[e][i] for i in idx]} if len(first.pieces) > e else {}),
            "target": first.target[e], "prediction": first.prediction[e], "probability": first.probability[e],
            "scores": {a.method: [float(a.scores[e, i]) for i in idx] for a in attrs},
            "faithfulness": {a.method: a.extra["faithfulness"][e] for a in attrs if "faithfulness" in a.extra},
            "details": {a.method: _per_example(a.extra, e) for a in attrs},
        })
    return {"attnviz_version": __version__, "model": model, "task": task,
            "methods": [a.method for a in attrs], "params": {a.method: a.params for a in attrs},
            "examples": examples}


def _per_example(extra: dict, e: int) -> dict:
    """The method's extra facts for one example (lists per example are cut to that example's entry)."""
    out = {}
    for k, v in extra.items():
        if k in ("faithfulness", "model"):
            continue
        out[k] = v[e] if isinstance(v, list) else v
    return out


def _color(v: float) -> str:
    return colour_hex(CMAP, (v + 1) / 2)


def _token_row(method: str, tokens: list[str], scores: list[float]) -> str:
    cells = []
    for tok, raw, v in zip(tokens, scores, normalised(scores)):
        fg = "#fff" if abs(v) > 0.6 else "#000"
        cells.append(f'<span class="t" style="background:{_color(float(v))};color:{fg}" '
                     f'title="{html.escape(f"{raw:.4g}")}">{html.escape(tok)}</span>')
    return f'<tr><th>{html.escape(method)}</th><td>{"".join(cells)}</td></tr>'


def _section(view: AttributionView) -> str:
    rows = "".join(_token_row(m, view.tokens, s) for m, s in view.scores.items())
    svg = base64.b64encode(figure_bytes(bars_figure(view), "svg")).decode("ascii")
    parts = [f"<section><h2>{html.escape(view.title)}</h2><p>{html.escape(view.subtitle)}</p>",
             f'<table class="tok">{rows}</table>',
             f'<img alt="bar chart of scaled scores" src="data:image/svg+xml;base64,{svg}">']
    if view.table:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in view.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in view.table)
        parts.append(f'<table class="faith"><caption>faithfulness (deletion: lower is better; insertion: '
                     f'higher is better)</caption><tr>{head}</tr>{body}</table>')
    return "".join(parts) + "</section>"


_STYLE = """body{font-family:"Noto Sans CJK SC","Noto Sans",system-ui,sans-serif;margin:2em;color:#222}
.t{display:inline-block;padding:1px 3px;margin:1px;border-radius:3px;white-space:pre}
.tok th{text-align:right;padding-right:.8em;font-weight:normal;color:#555;white-space:nowrap}
.faith{border-collapse:collapse;margin-top:.5em}.faith td,.faith th{border:1px solid #ccc;padding:2px 8px}
img{max-width:100%}section{margin-bottom:2.5em}footer{color:#777;font-size:.85em}"""


def to_html(attrs: list[Attribution], model: str, task: str, special: list[str] = ()) -> str:
    from attnviz import __version__

    params = "; ".join(f"{a.method}: {json.dumps(a.params, ensure_ascii=False)}" for a in attrs if a.params)
    body = "".join(_section(v) for v in views(attrs, model, special))
    foot = f"attnviz {__version__} · model {model} ({task})" + (f" · {params}" if params else "")
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}"><title>{html.escape(f"attribution · {model}")}'
            f"</title><style>{_STYLE}</style></head><body><h1>attribution</h1>"
            f"<p>Red raises the target, blue lowers it; each row is scaled by its largest magnitude "
            f"(hover a token for its raw score).</p>{body}<footer>{html.escape(foot)}</footer></body></html>")


def report_paths(out: Path, n: int, fmt: str) -> list[Path]:
    """One file, or for figures of several inputs one numbered file each, all inside out's folder."""
    out = Path(out)
    if fmt in ("html", "json") or n == 1:
        return [inside(out.parent, out.name)]
    return [inside(out.parent, f"{out.stem}-{i + 1}{out.suffix}") for i in range(n)]


def write_report(attrs: list[Attribution], out: Path, *, model: str, task: str,
                 special: list[str] = ()) -> tuple[list[Path], list[str]]:
    """Render everything first, then write atomically; returns the paths and any warnings."""
    fmt = pick_format(out)
    paths = report_paths(out, len(attrs[0].tokens), fmt)
    for p in paths:
        check_writable(p)
    warnings: list[str] = []
    if fmt == "json":
        blobs = [json.dumps(to_json(attrs, model, task), ensure_ascii=False, indent=1).encode("utf-8")]
    elif fmt == "html":
        blobs = [to_html(attrs, model, task, special).encode("utf-8")]
    else:
        blobs = []
        for view in views(attrs, model, special):
            fig, warning = attribution_figure(view)
            blobs.append(figure_bytes(fig, fmt))
            if warning and warning not in warnings:
                warnings.append(warning)
    for p, data in zip(paths, blobs):
        write_atomic(p, data)
    return paths, warnings
