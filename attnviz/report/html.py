"""The HTML report: one file with inline CSS, JS and data; it never touches the network.

Above SPLIT_BYTES of item data (a corpus run) one file could not open, so report.html keeps only an index
(id, the start of the text, prediction) and the items go to report-data/items-NNNNN.js, script files of
CHUNK items that the page loads when a card scrolls into view or is opened (scripts, unlike fetch, load
from file://; the CSP allows them as 'self'). The index list then draws only the cards in view.

Attention travels compactly: each (layer, head) matrix of real tokens is scaled by its own maximum to
uint8, the item's stack is zlib-compressed and base64-encoded, and the browser inflates it with
DecompressionStream only when the item is opened. Thumbnails are tiny uint8 matrices drawn on scroll.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import zlib
from importlib import resources
from pathlib import Path

import numpy as np

from attnviz.errors import BadInput
from attnviz.io import write_atomic
from attnviz.render.colors import ramp_hex
from attnviz.render.style import CMAP

MAX_VALUES = 2_000_000  # attention values kept per item; long inputs keep their last layers only
SPLIT_BYTES = 32 * 2**20  # item data above this: an index page plus item files loaded on demand
CHUNK = 100  # items per data file: a MiniLM chunk is ~2 MB, a screenful of cards needs one or two
INDEX_TEXT = 200  # characters of an item's text kept in the index (search and the card)
DATA_DIR = "report-data"
KEEP = ("id", "text", "image", "tokens", "prediction", "target", "mean_entropy", "most_attended", "notes",
        "view", "thumb", "attribution", "image_data", "cam", "files", "non_finite", "long")
# The pages' policy (the batch report's template adds 'self' for its split item files): nothing is fetched,
# only inline scripts and styles and data: images.
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:"
PAGE_FORMATS = ("html", "png", "svg", "pdf", "json")


def page_format(out: Path, what: str = "report") -> str:
    """The output format named by ``out``'s suffix, one of PAGE_FORMATS; anything else is refused."""
    fmt = Path(out).suffix.lstrip(".").lower()
    if fmt not in PAGE_FORMATS:
        raise BadInput(f"cannot tell the {what} format from {Path(out).name!r}; end --out with "
                       f"{', '.join('.' + f for f in PAGE_FORMATS)}")
    return fmt


_PLACEHOLDER = re.compile(r"__(TITLE|META|CSP|CSS|JS|DATA)__")


def encode_attention(weights: np.ndarray, layers: list[int]) -> dict:
    """(L, H, n, n) float -> {layers, heads, n, scale (L*H), data: base64(zlib(uint8))}."""
    n_l, n_h, n, _ = weights.shape
    keep = max(1, min(n_l, MAX_VALUES // max(1, n_h * n * n)))
    weights = weights[n_l - keep:]  # (l, H, n, n)
    scale = weights.reshape(keep * n_h, -1).max(axis=1)  # (l*H,)
    safe = np.where(scale > 0, scale, 1.0)
    scaled = np.nan_to_num(weights / safe[:, None, None].reshape(keep, n_h, 1, 1), nan=0.0)  # NaN is flagged, drawn 0
    q = np.rint(np.clip(scaled, 0, 1) * 255).astype(np.uint8)
    return {"layers": list(layers[n_l - keep:]), "heads": n_h, "n": n,
            "scale": [float(f"{s:.5g}") for s in scale.tolist()],
            "data": base64.b64encode(zlib.compress(q.tobytes(), 6)).decode("ascii")}


def thumbnail(matrix: np.ndarray, size: int = 32) -> dict:
    """A small uint8 picture of a 2-D array (block means), scaled to its maximum."""
    rows, cols = matrix.shape
    step = max(1, int(np.ceil(max(rows, cols) / size)))
    r, c = -(-rows // step), -(-cols // step)
    padded = np.zeros((r * step, c * step), dtype=np.float64)
    padded[:rows, :cols] = matrix
    small = padded.reshape(r, step, c, step).mean(axis=(1, 3))  # (r, c)
    top = small.max() or 1.0
    q = np.rint(np.clip(np.nan_to_num(small / top, nan=0.0), 0, 1) * 255).astype(np.uint8)
    return {"rows": r, "cols": c, "data": base64.b64encode(q.tobytes()).decode("ascii")}


def encode_png(data: bytes) -> str:
    """PNG bytes as a data URI (the report's CSP allows images from data: only)."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def encode_image(image, side: int = 224) -> str:
    """A JPEG data URI of an image, at most ``side`` pixels on its longer edge."""
    im = image.convert("RGB")
    im.thumbnail((side, side))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=82)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def script_json(value) -> str:
    """JSON that is safe inside <script>: no '</script>', '<!--' or line separators can end or bend it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _asset(name: str) -> str:
    return resources.files("attnviz.report").joinpath("assets", name).read_text(encoding="utf-8")


def render_html(records: list[dict], meta: dict) -> str:
    """The whole report as one string (one self-contained file, whatever its size)."""
    return _page(meta, len(records), [script_json({k: r.get(k) for k in KEEP}) for r in records], {}, "")


def html_files(records: list[dict], meta: dict, limit: int | None = None) -> dict[str, bytes]:
    """report.html, and above ``limit`` bytes of item data (SPLIT_BYTES by default) its item files:
    relative name -> bytes, every one rendered before any is written."""
    items = [script_json({k: r.get(k) for k in KEEP}) for r in records]
    if sum(len(t) for t in items) <= (SPLIT_BYTES if limit is None else limit):
        return {"report.html": _page(meta, len(records), items, {}, "").encode("utf-8")}
    files = {}
    for k in range(0, len(items), CHUNK):  # attnvizChunk(first index, [items]): the page's loader receives it
        files[f"{DATA_DIR}/items-{k // CHUNK:05d}.js"] = f"attnvizChunk({k},[{','.join(items[k:k + CHUNK])}]);\n".encode()
    index = [{"id": r.get("id"), "text": _start(r.get("text") or r.get("image") or ""),
              "label": (r.get("prediction") or {}).get("label")} for r in records]
    split = {"index": index, "split": {"chunk": CHUNK, "dir": DATA_DIR}}
    # the item files first: a report.html written last never points at files that are not there yet
    return {**files, "report.html": _page(meta, len(records), None, split, " 'self'").encode("utf-8")}


def _start(text) -> str:
    text = str(text)
    return text if len(text) <= INDEX_TEXT else text[:INDEX_TEXT] + "…"


def _page(meta: dict, n: int, items: list[str] | None, extra: dict, script_src: str) -> str:
    """The page around the data: ``items`` already as script-safe JSON (measured once), or None when split."""
    data = script_json({"cmap": ramp_hex(CMAP), "meta": meta, **extra})  # cmap: the PNGs' colours, for canvases
    if items is not None:
        data = data[:-1] + ',"items":[' + ",".join(items) + "]}"
    model = str(meta.get("model", ""))
    parts = {
        "TITLE": html.escape(model),
        "META": html.escape(f"{model} · {n} items" + (f" · {meta['skipped']} skipped" if meta.get("skipped") else "")
                            + (" · interrupted" if meta.get("interrupted") else "")),
        "CSP": script_src,
        "CSS": _asset("report.css"),
        "JS": _asset("report.js"),
        "DATA": data,
    }
    # One pass: text inserted for one placeholder is never scanned for another.
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], _asset("template.html"))


def write_html(path: Path, records: list[dict], meta: dict, limit: int | None = None) -> Path:
    """report.html at ``path``, with its item files in a folder beside it when the report is split."""
    files = html_files(records, meta, limit)
    if len(files) > 1:
        (path.parent / DATA_DIR).mkdir(exist_ok=True)
    for name, data in files.items():
        write_atomic(path if name == "report.html" else path.parent / name, data)
    return path
