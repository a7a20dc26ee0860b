"""Figure -> bytes in PNG, SVG or PDF, byte-stable for the same input."""

from __future__ import annotations

import io
import warnings

from matplotlib import rc_context

FORMATS = ("png", "svg", "pdf")
# Dropping the software/date stamps makes the same figure give the same bytes.
_METADATA = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None, "Producer": None}}


def figure_bytes(fig, fmt: str = "png", dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    # bbox_inches="tight" would draw the figure twice; layouts are sized explicitly instead.
    # A fixed salt makes SVG element ids (clip paths, images) the same on every run instead of random.
    with warnings.catch_warnings(), rc_context({"svg.hashsalt": "attnviz"}):
        # One clear line about a missing CJK font is given by the caller, not one per glyph.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
    return buf.getvalue()
