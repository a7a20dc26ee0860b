"""Files of an explained answer: one offline HTML page, PNG/SVG/PDF figures, or JSON.

The HTML shows per prompt the answer's tokens across the top and the prompt's down the side (a generated
x source matrix per method); clicking a generated token colours the prompt by its scores. It loads
nothing (a Content-Security-Policy forbids it), and every string from the input or the model is
escaped; the scores travel as JSON inside the page, with "<" escaped so no text can close the script.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from attnviz.io import check_writable, finite, inside, json_bytes, write_atomic
from attnviz.render.colors import colour_hex
from attnviz.render.generation import CMAP, GenerationView, generation_figure, matrix
from attnviz.render.output import figure_bytes
from attnviz.report.html import CSP, page_format



def pick_format(out: Path) -> str:
    return page_format(out, "output")


def output_paths(out: Path, n: int) -> list[Path]:
    """One HTML page for every prompt; other formats one file per prompt (numbered when there are several)."""
    out = Path(out)
    if pick_format(out) == "html" or n == 1:
        return [inside(out.parent, out.name)]
    return [inside(out.parent, f"{out.stem}-{i + 1}{out.suffix}") for i in range(n)]


def view_of(result) -> GenerationView:
    answer = "".join(result.answer)
    short = answer if len(answer) <= 60 else answer[:59] + "…"
    return GenerationView(f"{result.model} · answer: {short}", result.tokens, result.prompt_length,
                          [(s["position"], s["token"]) for s in result.steps], result.scores)


def write_generation(results, out: Path) -> tuple[list[Path], list[str]]:
    """Render every file first, then write each atomically; (paths, warnings such as a missing CJK font)."""
    fmt = pick_format(out)
    paths = output_paths(out, len(results))
    for p in paths:
        check_writable(p)
    warnings: list[str] = []
    if fmt == "html":
        blobs = [to_html(results).encode("utf-8")]
    elif fmt == "json":
        blobs = []
        for r in results:
            doc, bad = finite(r.to_json())
            warnings += [f"{where} is not a finite number; written as null" for where in bad]
            blobs.append(json_bytes(doc, indent=1))
    else:
        blobs = []
        for r in results:
            fig, warning = generation_figure(view_of(r))
            blobs.append(figure_bytes(fig, fmt))
            if warning and warning not in warnings:
                warnings.append(warning)
    for p, data in zip(paths, blobs):
        write_atomic(p, data)
    return paths, warnings


def _cell(v: float) -> str:
    return "#f4f4f4" if v != v else colour_hex(CMAP, (v + 1) / 2)  # NaN: a position the step cannot see


def _matrix_table(method: str, result) -> str:
    width = max(s["position"] for s in result.steps)
    grid = matrix(result.scores[method], width)
    head = "".join(f'<th class="g" data-step="{j}" title="{html.escape(s["token"])} (position {s["position"]})">'
                   f'{html.escape(s["token"])}</th>' for j, s in enumerate(result.steps))
    body = []
    for k in range(width):
        cells = "".join(f'<td style="background:{_cell(float(v))}"></td>' for v in grid[k])
        cls = ' class="ans"' if k >= result.prompt_length else ""
        body.append(f"<tr{cls}><th>{html.escape(result.tokens[k])}</th>{cells}</tr>")
    return (f'<table class="mx" data-method="{html.escape(method)}"><caption>{html.escape(method)}</caption>'
            f'<tr><th></th>{head}</tr>{"".join(body)}</table>')


def _section(i: int, result) -> str:
    toks = "".join(f'<span class="t" data-pos="{k}">{html.escape(t)}</span>' for k, t in enumerate(result.tokens))
    methods = "".join(f'<option>{html.escape(m)}</option>' for m in result.scores)
    rows = "".join(f"<tr><td>{html.escape(s['token'])}</td><td>{s['position']}</td><td>{s['probability']:.3f}</td>"
                   f"<td>{s['entropy']:.3f}</td><td>{_opt(s.get('contrast'))}</td></tr>" for s in result.steps)
    return (f'<section data-ex="{i}"><h2>{html.escape(result.prompt)}</h2>'
            f'<p>method <select class="method">{methods}</select> · click a generated token (top of a matrix, '
            f'or below) to colour what it came from</p><p class="text">{toks}</p>'
            f'<div class="mxs">{"".join(_matrix_table(m, result) for m in result.scores)}</div>'
            f'<table class="steps"><tr><th>token</th><th>position</th><th>probability</th><th>entropy</th>'
            f'<th>contrast</th></tr>{rows}</table></section>')


def _opt(v) -> str:
    return "–" if v is None else f"{v:.3f}"


_STYLE = """body{font-family:"Noto Sans CJK SC","Noto Sans",system-ui,sans-serif;margin:2em;color:#222}
.t{display:inline-block;padding:1px 3px;margin:1px;border-radius:3px;white-space:pre;cursor:default}
.t.gen{cursor:pointer;border-bottom:2px solid #888}.t.sel{outline:2px solid #000}
.mxs{display:flex;flex-wrap:wrap;gap:2em}.mx{border-collapse:collapse;font-size:11px}
.mx td{width:14px;height:12px;padding:0}.mx th{font-weight:normal;white-space:pre;padding:0 3px}
.mx th.g{cursor:pointer;writing-mode:vertical-rl}.mx tr.ans th{color:#777}
.steps{border-collapse:collapse;margin-top:1em}.steps td,.steps th{border:1px solid #ccc;padding:2px 8px}"""

_SCRIPT = """const DATA=JSON.parse(document.getElementById('data').textContent);
function colour(v){const a=Math.min(1,Math.abs(v));const w=Math.round(255*(1-a));
return v>=0?`rgb(255,${w},${w})`:`rgb(${w},${w},255)`;}
function show(sec,step){const ex=DATA[sec.dataset.ex];const m=sec.querySelector('.method').value;
const row=ex.scores[m][step];const top=Math.max(1e-12,...row.map(Math.abs));
sec.querySelectorAll('.t').forEach(el=>{const k=+el.dataset.pos;el.classList.remove('sel');
el.style.background=k<row.length?colour(row[k]/top):'';});
const at=sec.querySelector(`.t[data-pos="${ex.steps[step].position}"]`);if(at)at.classList.add('sel');}
document.querySelectorAll('section[data-ex]').forEach(sec=>{const ex=DATA[sec.dataset.ex];
ex.steps.forEach((s,j)=>{const el=sec.querySelector(`.t[data-pos="${s.position}"]`);
if(el){el.classList.add('gen');el.addEventListener('click',()=>show(sec,j));}});
sec.querySelectorAll('th.g').forEach(th=>th.addEventListener('click',()=>show(sec,+th.dataset.step)));
sec.querySelector('.method').addEventListener('change',()=>show(sec,0));show(sec,0);});"""


def to_html(results) -> str:
    """One page for every explained prompt."""
    from attnviz import __version__

    data, _ = finite([r.to_json() for r in results])
    payload = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")  # no "</script>" can end the block
    model = results[0].model
    body = "".join(_section(i, r) for i, r in enumerate(results))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{html.escape(f'generate · {model}')}</title><style>{_STYLE}</style></head><body>"
            f"<h1>where the answer came from</h1><p>Model {html.escape(model)}. Each matrix: generated tokens across "
            f"the top, the positions they could read down the side (answer positions in grey); each column scaled by "
            f"its largest magnitude, red raises the token, blue lowers it.</p>{body}"
            f'<footer>attnviz {html.escape(__version__)}</footer>'
            f'<script id="data" type="application/json">{payload}</script><script>{_SCRIPT}</script></body></html>')
