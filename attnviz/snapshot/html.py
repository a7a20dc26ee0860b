"""diff.html for a snapshot check: baseline | current | |difference| heatmaps of the drifting heads.

One self-contained file (pictures inlined as PNG data URIs, no scripts, no outside resources);
every string that comes from an input, a token or a manifest is escaped.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from attnviz.render.headview import drift_png
from attnviz.io import write_atomic
from attnviz.snapshot.result import HEAD_COLUMNS, CheckResult, HeadDiff, head_cells, number, short

MAX_PANELS = 8  # heads drawn; the tables list every drifting one
MAX_ROWS = 20  # rows of the worst-heads table

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.4em} h2{font-size:1.1em;margin-top:2em}
table{border-collapse:collapse;font-size:.9em} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3} .bad{color:#b00020;font-weight:600} .ok{color:#1b7f3b;font-weight:600}
figure{margin:1em 0;border-top:1px solid #ddd;padding-top:.5em} img{max-width:100%}
figcaption{font-size:.9em;margin-bottom:.4em} code{background:#f5f5f5;padding:0 .2em}
"""


def _panel(result: CheckResult, head: HeadDiff) -> tuple[str, bytes] | None:
    found = next((r for r in result.inputs if r.key == head.key and r.pair), None)
    if found is None:
        return None
    base, cur = found.pair
    m = base.maps
    li, hi = m.layers.index(head.layer), m.heads.index(head.head)
    b, c = base.maps.stack(head.stack)[li, 0, hi], cur.maps.stack(head.stack)[li, 0, hi]  # (Q, K)
    enc, dec = m.tokens[0], (m.decoder_tokens[0] if m.decoder_tokens else [])
    queries, keys = {"encoder": (enc, enc), "decoder": (dec, dec), "cross": (dec, enc)}[head.stack]
    title = f"{head.stack} layer {head.layer} head {head.head}"
    return found.text, drift_png(b.float().numpy(), c.float().numpy(), queries, keys, title, dpi=80)


def _heads_table(heads: list[HeadDiff], texts: dict[str, str]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in ("input", *HEAD_COLUMNS))
    rows = "".join(f"<tr><td>{escape(short(texts.get(h.key, h.key), 70))}</td>"
                   + "".join(f"<td>{escape(c)}</td>" for c in head_cells(h)[:-1])
                   + f"<td class=bad>{escape(head_cells(h)[-1])}</td></tr>" for h in heads)
    return f"<table><tr>{head}</tr>{rows}</table>"


def _sections(result: CheckResult) -> list[str]:
    texts = {r.key: r.text for r in result.inputs}
    out = []
    heads = result.worst_heads(MAX_ROWS)
    if heads:
        out.append(f"<h2>Worst heads</h2>{_heads_table(heads, texts)}")
    other = [r for r in result.failed if r.status in ("tokens", "shape")]
    if other:
        items = "".join(f"<li>{escape(short(r.text, 70))}: {escape(r.message)}</li>" for r in other)
        out.append(f"<h2>Not compared</h2><ul>{items}</ul>")
    attrs = [a for r in result.inputs for a in r.drifting_attrs]
    if attrs:
        rows = "".join(f"<tr><td>{escape(short(texts[a.key], 70))}</td><td>{escape(a.method)}</td>"
                       f"<td class=bad>{escape(a.problem)}</td></tr>" for a in attrs)
        out.append(f"<h2>Attributions</h2><table><tr><th>input</th><th>method</th><th>drift</th></tr>{rows}</table>")
    if result.context:
        rows = "".join(f"<tr><td>{escape(k)}</td><td><code>{escape(b)}</code></td><td><code>{escape(c)}</code></td></tr>"
                       for k, b, c in result.context)
        out.append(f"<h2>Context that changed</h2><table><tr><th>field</th><th>baseline</th><th>current</th></tr>{rows}</table>")
    if result.unused:
        out.append("<h2>Baselines no input uses</h2><ul>" + "".join(f"<li><code>{escape(k)}</code></li>" for k in result.unused) + "</ul>")
    return out


def _by_layer(result: CheckResult) -> str:
    rows = result.by_layer()
    if not rows:
        return ""
    n_heads = max((len(r.pair[0].maps.heads) for r in result.inputs if r.pair), default=0)
    body = "".join(f"<tr><td>{escape(s)}</td><td>{layer}</td><td>{count} of {n_heads * len(result.inputs)}</td>"
                   f"<td>{number(worst)}</td><td class=bad>{number(sev)}x</td></tr>"
                   for s, layer, count, worst, sev in rows)
    return ("<h2>Drift by layer</h2><table><tr><th>stack</th><th>layer</th><th>input x head pairs out of tolerance</th>"
            f"<th>largest max |Δ|</th><th>of tolerance</th></tr>{body}</table>")


def _figures(result: CheckResult) -> list[str]:
    parts, seen = [], set()
    for head in result.worst_heads(200):
        if len(seen) >= MAX_PANELS or (head.key, head.stack, head.layer, head.head) in seen or head.nonfinite:
            continue  # a head with NaN or Inf has no picture to draw: the tables name it
        seen.add((head.key, head.stack, head.layer, head.head))
        panel = _panel(result, head)
        if panel:
            text, png = panel
            data = base64.b64encode(png).decode("ascii")
            caption = f"{escape(short(text, 120))} — {escape(head.stack)} layer {head.layer} head {head.head}"
            alt = escape(f"baseline, current and difference of layer {head.layer} head {head.head}", quote=True)
            parts.append(f"<figure><figcaption>{caption}</figcaption><img alt=\"{alt}\" src=\"data:image/png;base64,{data}\"></figure>")
    return ([f"<h2>The {len(parts)} worst heads: baseline | current | |difference|</h2>"] + parts) if parts else []


def render_html(result: CheckResult, title: str = "attnviz snapshot check") -> str:
    verdict = "ok" if result.ok else "bad"
    parts = [f"<h1>{escape(title)}</h1>", f"<p class={verdict}>{escape(result.summary())}</p>", _by_layer(result),
             *_figures(result), *_sections(result)]
    body = "\n".join(p for p in parts if p)
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            f"style-src 'unsafe-inline'\"><title>{escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def write_html(result: CheckResult, path: Path) -> Path:
    return write_atomic(Path(path), render_html(result).encode("utf-8"))
