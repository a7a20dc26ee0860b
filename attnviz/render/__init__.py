"""Pure rendering: data in, matplotlib Figure (never pyplot) or bytes out.

Names are loaded lazily so that a drawing worker that needs only fonts and styles does not import torch.
"""

from __future__ import annotations

__all__ = ["VIEWS", "figure_bytes", "render_view", "select", "view_bytes"]


def __getattr__(name: str):
    if name in ("VIEWS", "render_view", "select", "view_bytes"):
        from attnviz.render import heatmap

        return getattr(heatmap, name)
    if name == "figure_bytes":
        from attnviz.render.output import figure_bytes

        return figure_bytes
    raise AttributeError(f"module 'attnviz.render' has no attribute {name!r}")
