"""Notebook views of attribution results: tokens coloured per method with the faithfulness table
(``Attribution``), and CAM maps laid over the original images (``CamResult``). Plain HTML, no script: every
string from the input or the model is escaped, and pictures are data URIs."""

from __future__ import annotations

import html
import io

from attnviz.attribution.results import Attribution, CamResult
from attnviz.errors import BadInput
from attnviz.notebook.page import View, still

# Left out of the coloured rows, as in the attribution report's pictures; a text of nothing else keeps them.
SPECIAL = ["[CLS]", "[SEP]", "[PAD]", "<s>", "</s>", "<pad>", "[BOS]", "[EOS]"]
DPI = 80
SIDE = 256  # longest side of an image drawn in a CAM view


def attribution_view(attrs: list[Attribution], *, example: int | None = None, max_bytes: int) -> View:
    """Attributions of one batch (one per method, as ``explain`` returns them) as coloured token rows and the
    faithfulness table per example; ``example`` shows one example only."""
    from attnviz.render.attribution import attribution_figure
    from attnviz.render.output import figure_bytes
    from attnviz.report.attribution import views

    if not attrs:
        raise BadInput("no attribution to show")
    if any(a.tokens != attrs[0].tokens for a in attrs):
        raise BadInput("these attributions explain different inputs; show them one by one")
    model = str(attrs[0].extra.get("model", "model"))
    pages = views(attrs, model, SPECIAL)
    if example is not None:
        if not 0 <= example < len(pages):
            raise BadInput(f"example {example} is out of range; valid: 0-{len(pages) - 1}")
        pages = [pages[example]]
    fig, warning = attribution_figure(pages[0])
    png = figure_bytes(fig, "png", dpi=DPI)
    title = f"{model} · {', '.join(a.method for a in attrs)} · {len(pages)} example{'s' * (len(pages) != 1)}"
    notes = [warning] if warning else []
    body = "".join(_example(v) for v in pages)
    text = f"Attribution({', '.join(a.method for a in attrs)}; {len(attrs[0].tokens)} examples)"
    if len(body) > max_bytes:
        from attnviz.notebook.page import picture

        note = (f"{len(pages)} examples would take {len(body) / 1e6:.1f} MB of HTML, above the limit of "
                f"{max_bytes / 1e6:.1f} MB; this is the first (attnviz.show(attrs, example=...) picks one)")
        return still(title, picture(png, title), png, [*notes, note], text)
    return still(title, body, png, notes, text)


def _example(view) -> str:
    from attnviz.render.attribution import CMAP, normalised
    from attnviz.render.colors import colour_hex

    rows = []
    for method, scores in view.scores.items():
        cells = []
        for tok, raw, v in zip(view.tokens, scores, normalised(scores)):
            fg = "#fff" if abs(v) > 0.6 else "#000"
            cells.append(f'<span class="av-tok" style="background:{colour_hex(CMAP, (float(v) + 1) / 2)};color:{fg}" '
                         f'title="{html.escape(f"{raw:.4g}")}">{html.escape(tok)}</span>')
        rows.append(f'<div class="av-row" data-method="{html.escape(method)}"><span class="av-method">'
                    f'{html.escape(method)}</span><span class="av-tokens">{"".join(cells)}</span></div>')
    parts = [f'<div class="av-title">{html.escape(view.title)}</div><div class="av-label">{html.escape(view.subtitle)}'
             " · red raises the target, blue lowers it</div>", *rows]
    if view.table:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in view.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in view.table)
        parts.append(f'<table class="av-table"><tr>{head}</tr>{body}</table>')
    return '<section class="av-example">' + "".join(parts) + "</section>"


def cam_view(result: CamResult, images=None, *, max_bytes: int) -> View:
    """``result``'s maps laid over ``images`` (paths or PIL images, as given to ``cam``), with the originals
    beside them; without ``images`` the maps alone (a CamResult does not keep the images)."""
    from attnviz.images import load_image

    count = int(result.maps.shape[0])
    pil = None
    if images is not None:
        pil = [load_image(im) for im in (images if isinstance(images, (list, tuple)) else [images])]
    if pil is not None and len(pil) != count:
        raise BadInput(f"{len(pil)} images given for {count} maps")
    figures = [_figures(result, i, pil[i] if pil else None) for i in range(count)]
    notes = [] if pil else ["the maps alone: attnviz.show(result, images=[...]) lays them over the original images"]
    if result.heads is not None:
        notes.append(f"per-head maps ({result.heads.shape[1]} heads) are kept in result.heads; this shows their fusion")
    title = f"{result.method} · {count} image{'s' * (count != 1)} · {result.grid[0]} x {result.grid[1]} patches"
    png = _cam_png(result, pil)
    text = f"CamResult({result.method}; {count} images, {result.grid[0]}x{result.grid[1]} patches)"
    body = '<div class="av-images">' + "".join(figures) + "</div>"
    if len(body) > max_bytes:
        from attnviz.notebook.page import picture

        note = f"{count} images would take {len(body) / 1e6:.1f} MB of HTML, above the limit; this is the first"
        return still(title, picture(png, title), png, [*notes, note], text)
    return still(title, body, png, notes, text)


def _figures(result: CamResult, i: int, image) -> str:
    from attnviz.report.html import encode_image

    caption = f"target: {result.target[i]}" + "".join(f" · {label} {p:.2f}" for label, p in result.top[i][:3])
    shown = [("original", encode_image(image, SIDE)), ("overlay", encode_image(_overlay(result, i, image), SIDE))] \
        if image is not None else [("map", encode_image(_overlay(result, i, None), SIDE))]
    cells = "".join(f'<figure><img class="av-picture" alt="{name}" src="{src}"><figcaption>{name}</figcaption></figure>'
                    for name, src in shown)
    return f'<figure class="av-cam" data-i="{i}">{cells}<figcaption>{html.escape(caption)}</figcaption></figure>'


def _overlay(result: CamResult, i: int, image):
    """The map over the image at its own size; without an image the coloured map, upsampled to SIDE pixels."""
    from PIL import Image

    from attnviz.render.overlay import colorize, overlay

    grid = result.maps[i].float().numpy()  # (gh, gw)
    if image is None:
        scale = max(1, SIDE // max(grid.shape))
        small = Image.fromarray(colorize(grid), "RGB")
        return small.resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.Resampling.NEAREST)
    box = result.boxes[i] if result.boxes else None
    return overlay(image, grid, box)


def _cam_png(result: CamResult, pil) -> bytes:
    """The first image's original | map | overlay panel, or its coloured map without the image."""
    from attnviz.render.output import figure_bytes
    from attnviz.render.overlay import panel, title_lines

    if pil is None:
        buf = io.BytesIO()
        _overlay(result, 0, None).save(buf, format="PNG")
        return buf.getvalue()
    box = result.boxes[0] if result.boxes else None
    title = title_lines(result.target[0], result.top[0], result.method, str(result.params.get("model") or "CAM"))
    fig = panel(pil[0], result.maps[0].float().numpy(), _overlay(result, 0, pil[0]), title, box)
    return figure_bytes(fig, "png", dpi=DPI)
