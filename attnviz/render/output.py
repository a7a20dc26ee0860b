"""Figure -> bytes in PNG, SVG or PDF, byte-stable for the same input."""

from __future__ import annotations

import io

FORMATS = ("png", "svg", "pdf")
# Dropping the software/date stamps makes the same figure give the same bytes.
_METADATA = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None, "Producer": None}}


def figure_bytes(fig, fmt: str = "png", dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    # bbox_inches="tight" would draw the figure twice; layouts are sized explicitly instead.
    fig.savefig(buf, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
    return buf.getvalue()
