"""Notebook view of an explained generation: per method, the matrix of generated tokens (across) by the
positions they came from (down), coloured by each step's scaled score, and the table of step scores.
Plain HTML, no script; every token is escaped."""

from __future__ import annotations

import html

from attnviz.attribution.generation import GeneratedAttribution
from attnviz.errors import BadInput
from attnviz.notebook.page import View, picture, still

DPI = 80
MAX_CELLS = 40_000  # matrix cells drawn as HTML per result; beyond it the picture alone


def generation_view(results: list[GeneratedAttribution], *, max_bytes: int) -> View:
    """Explained answers (as ``attribute_generation`` returns them), one section each; the PNG is the first's."""
    from attnviz.render.generation import generation_figure
    from attnviz.render.output import figure_bytes
    from attnviz.report.generation import view_of

    if not results:
        raise BadInput("no generation to show")
    fig, warning = generation_figure(view_of(results[0]))
    png = figure_bytes(fig, "png", dpi=DPI)
    title = f"{results[0].model} · {len(results)} answer{'s' * (len(results) != 1)} explained"
    notes = [warning] if warning else []
    body = "".join(_section(r) for r in results)
    text = f"GeneratedAttribution({results[0].model}; {len(results)} answers)"
    if len(body) > max_bytes:
        note = f"{len(results)} answers would take {len(body) / 1e6:.1f} MB of HTML, above the limit; this is the first"
        return still(title, picture(png, title), png, [*notes, note], text)
    return still(title, body, png, notes, text)


def _section(result: GeneratedAttribution) -> str:
    answer = "".join(result.answer)
    parts = [f'<div class="av-title">{html.escape(result.prompt)}</div>'
             f'<div class="av-label">answer: {html.escape(answer)} · red raises the generated token, blue lowers it</div>']
    width = max((s["position"] for s in result.steps), default=0)
    if width * len(result.steps) * len(result.scores) > MAX_CELLS:
        parts.append(f'<div class="av-note">{width} x {len(result.steps)} cells per method: see the picture</div>')
    else:
        parts.append('<div class="av-images">' + "".join(_matrix(m, result, width) for m in result.scores) + "</div>")
    rows = "".join(f"<tr><td>{html.escape(s['token'])}</td><td>{s['position']}</td><td>{s['probability']:.3f}</td>"
                   f"<td>{s['entropy']:.3f}</td></tr>" for s in result.steps)
    parts.append('<table class="av-table"><tr><th>token</th><th>position</th><th>probability</th><th>entropy (nats)'
                 f"</th></tr>{rows}</table>")
    return '<section class="av-generation">' + "".join(parts) + "</section>"


def _matrix(method: str, result: GeneratedAttribution, width: int) -> str:
    """(sources, steps) cells; a position a step cannot see is grey."""
    from attnviz.render.colors import colour_hex
    from attnviz.render.generation import CMAP, matrix

    grid = matrix(result.scores[method], width)  # (width, steps) scaled to [-1, 1] per step
    head = "".join(f'<th class="av-step">{html.escape(s["token"])}</th>' for s in result.steps)
    body = []
    for k in range(width):
        cells = "".join('<td style="background:#f4f4f4"></td>' if v != v else
                        f'<td style="background:{colour_hex(CMAP, (float(v) + 1) / 2)}" title="{v:.3f}"></td>'
                        for v in grid[k])
        body.append(f"<tr><th>{html.escape(result.tokens[k])}</th>{cells}</tr>")
    return (f'<table class="av-matrix" data-method="{html.escape(method)}"><caption>{html.escape(method)}</caption>'
            f'<tr><th></th>{head}</tr>{"".join(body)}</table>')
