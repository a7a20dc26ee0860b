"""One notebook output: a self-contained HTML fragment (inline CSS, inline script, inline data) and a PNG.

Nothing is fetched: no CDN, no require.js, no widget. Each fragment has its own random id and its script works
inside its own root element only, so several views in one notebook never touch each other. A fragment carries
its static picture too: a frontend that strips scripts (an untrusted notebook, GitHub's viewer) still shows it,
and the script hides it once the interactive view is drawn.
"""

from __future__ import annotations

import base64
import html
import re
import uuid
import zlib
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

MAX_BYTES = 4_000_000  # the most characters of HTML one output may take; above it, a note and a PNG
MAX_VALUES = 2_000_000  # attention values sent per view, as in the report (render/report's MAX_VALUES)
_PLACEHOLDER = re.compile(r"__(ID|CSS|HEAD|NOTES|STATIC|DATA|JS)__")
_LIVE = ('<div class="attnviz-nb" id="__ID__" data-state="static"><style>__CSS__</style>__HEAD____NOTES__'
         '<div class="av-static">__STATIC__</div><div class="av-live" hidden></div>'
         '<script type="application/json" class="av-data">__DATA__</script>'
         # currentScript finds this output's own root even if a frontend shows the output twice; the id is the
         # fallback for frontends that run the script detached from its place (jQuery's globalEval)
         '<script>(function(){var s=document.currentScript,'
         'r=(s&&s.closest&&s.closest(".attnviz-nb"))||document.getElementById("__ID__");\n__JS__\nattnvizView(r);})();'
         '</script></div>')
_STILL = '<div class="attnviz-nb" id="__ID__" data-state="static"><style>__CSS__</style>__HEAD____NOTES____STATIC__</div>'


@dataclass
class View:
    """What a notebook shows for one object: ``html`` (a fragment with inline assets) and ``png`` (its picture)."""

    html: str
    png: bytes | None = None
    text: str = "attnviz view"
    notes: list[str] = field(default_factory=list)

    def _repr_html_(self) -> str:
        return self.html

    def _repr_png_(self) -> bytes | None:
        return self.png

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """text/html for frontends with JavaScript, image/png for those without, text/plain for a terminal."""
        bundle = {"text/plain": self.text, "text/html": self.html}
        if self.png:
            bundle["image/png"] = base64.b64encode(self.png).decode("ascii")
        return {k: v for k, v in bundle.items() if (not include or k in include) and k not in (exclude or ())}


def asset(name: str) -> str:
    return resources.files("attnviz.notebook").joinpath("assets", name).read_text(encoding="utf-8")


def pack(rows: np.ndarray) -> dict:
    """(M, N) float -> {rows, cols, lo (M), hi (M), data: base64(zlib(uint8 (M, N)))}.

    As the report sends attention: each row is scaled to bytes between its own minimum and maximum and the
    whole is zlib-compressed; the browser inflates it with DecompressionStream. NaN and Inf are drawn as 0.
    """
    x = np.nan_to_num(np.asarray(rows, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)  # (M, N)
    lo, hi = x.min(axis=1), x.max(axis=1)  # (M,)
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.rint(np.clip((x - lo[:, None]) / span[:, None], 0, 1) * 255).astype(np.uint8)
    return {"rows": int(x.shape[0]), "cols": int(x.shape[1]),
            "lo": [float(f"{v:.6g}") for v in lo.tolist()], "hi": [float(f"{v:.6g}") for v in hi.tolist()],
            "data": base64.b64encode(zlib.compress(q.tobytes(), 6)).decode("ascii")}


def picture(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    src = base64.b64encode(png).decode("ascii")
    return f'<img class="av-picture" alt="{html.escape(alt)}" src="data:image/png;base64,{src}">'


def _fill(template: str, parts: dict[str, str]) -> str:
    # One pass: text inserted for one placeholder is never scanned for another.
    return _PLACEHOLDER.sub(lambda m: parts.get(m.group(1), ""), template)


def _common(title: str, notes: list[str]) -> dict[str, str]:
    return {"ID": "attnviz-" + uuid.uuid4().hex[:16], "CSS": asset("notebook.css"),
            "HEAD": f'<div class="av-caption">{html.escape(title)}</div>',
            "NOTES": "".join(f'<div class="av-note">{html.escape(n)}</div>' for n in notes)}


def still(title: str, body: str, png: bytes | None, notes: list[str] = (), text: str = "attnviz view") -> View:
    """A page without script: ``body`` is HTML built by the caller with every string escaped."""
    page = _fill(_STILL, {**_common(title, list(notes)), "STATIC": body})
    return View(page, png, text, list(notes))


def live(title: str, data: dict, png: bytes | None, notes: list[str], *, text: str, max_bytes: int,
         too_big: str) -> View:
    """The interactive page for ``data`` (read by notebook.js), its PNG shown until it draws; above ``max_bytes``
    characters the PNG alone with the note ``too_big``."""
    from attnviz.report.html import script_json

    parts = {**_common(title, notes), "STATIC": picture(png, title), "DATA": script_json(data), "JS": asset("notebook.js")}
    page = _fill(_LIVE, parts)
    if len(page) <= max_bytes:
        return View(page, png, text, list(notes))
    note = f"this view would take {len(page) / 1e6:.1f} MB of HTML, above the limit of {max_bytes / 1e6:.1f} MB; {too_big}"
    return still(title, picture(png, title), png, [*notes, note], text)
