"""Pure rendering: data in, matplotlib Figure (never pyplot) or bytes out."""

from attnviz.render.heatmap import VIEWS, render_view
from attnviz.render.output import figure_bytes

__all__ = ["VIEWS", "figure_bytes", "render_view"]
