"""Notebook views: every result shows itself, interactive and offline.

``AttentionMaps`` (head view with layer/head choice and token hover, model view; the long-input views when
only per-head statistics were kept), ``Attribution`` (tokens coloured per method, faithfulness table),
``CamResult`` (maps over the original images) and ``GeneratedAttribution`` (generated x source matrix) get
``_repr_html_`` and ``_repr_mimebundle_`` (text/html with inline CSS, script and data; image/png for
frontends without JavaScript). ``show`` picks a view.

The result types live below this layer (DESIGN.md section 1), so they cannot import it, not even inside a
method; ``install`` attaches the methods to them instead, and ``attnviz`` calls it the first time one of its
public names is used, which is how every result reaches a user. Importing this package loads no matplotlib.
"""

from __future__ import annotations

import sys

from attnviz.notebook.page import MAX_BYTES, View

__all__ = ["MAX_BYTES", "View", "build", "install", "show"]
_installed = False


def build(obj, view: str | None = None, *, layer: int = -1, head: int | None = 0, example: int | None = None,
         stack: str = "encoder", images=None, max_bytes: int = MAX_BYTES) -> View:
    """The notebook view of ``obj``: AttentionMaps, an Attribution or a list of them (one per method, as
    ``explain`` returns), a CamResult, or a GeneratedAttribution or a list of them (one per prompt).

    AttentionMaps: ``view`` is head, model (both when None, from full weights (layer, batch, head, Q, K)),
    statistics, overview or positions (the long-input views, from the per-head statistics); ``layer`` and
    ``head`` are model numbers (head None: the mean of the heads), ``example`` indexes the batch, ``stack``
    picks encoder, decoder or cross of an encoder-decoder. CamResult: ``images`` are the B images the maps
    (B, gh, gw) were computed for. Above ``max_bytes`` characters of HTML the view is a note and a PNG.
    """
    from attnviz.attribution.results import Attribution, CamResult
    from attnviz.errors import BadInput
    from attnviz.maps import AttentionMaps

    if isinstance(obj, AttentionMaps):
        from attnviz.notebook.attention import maps_view

        return maps_view(obj, view, layer=layer, head=head, example=example or 0, stack=stack, max_bytes=max_bytes)
    several = isinstance(obj, (list, tuple)) and obj and all(isinstance(a, Attribution) for a in obj)
    if isinstance(obj, Attribution) or several:
        from attnviz.notebook.results import attribution_view

        attrs = [obj] if isinstance(obj, Attribution) else list(obj)
        return attribution_view(attrs, example=example, max_bytes=max_bytes)
    if isinstance(obj, CamResult):
        from attnviz.notebook.results import cam_view

        return cam_view(obj, images, max_bytes=max_bytes)
    from attnviz.attribution.generation import GeneratedAttribution

    if isinstance(obj, GeneratedAttribution) or (isinstance(obj, (list, tuple)) and obj
                                                 and all(isinstance(g, GeneratedAttribution) for g in obj)):
        from attnviz.notebook.generation import generation_view

        return generation_view([obj] if isinstance(obj, GeneratedAttribution) else list(obj), max_bytes=max_bytes)
    raise BadInput(f"cannot show a {type(obj).__name__}; attnviz.show takes AttentionMaps, Attribution "
                   "(or a list of them), CamResult or GeneratedAttribution (or a list of them)")


def show(obj, view: str | None = None, **options) -> View | None:
    """Display the view of ``obj`` (see ``attnviz.notebook.build`` for ``view`` and the options) in the running
    notebook and return None; outside IPython nothing can display it, so the View is returned (its ``html``
    can be saved as a page, its ``png`` as a picture)."""
    shown = build(obj, view, **options)
    if "IPython" in sys.modules:  # a kernel has imported it long before; a plain script need not pay for it
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(shown)
            return None
    return shown


def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
    return build(self)._repr_mimebundle_(include, exclude)


def _repr_html_(self) -> str:
    return build(self).html


def install() -> None:
    """Attach ``_repr_html_`` and ``_repr_mimebundle_`` to the result types (once; see the module docstring)."""
    global _installed
    if _installed:
        return
    from attnviz.attribution.generation import GeneratedAttribution
    from attnviz.attribution.results import Attribution, CamResult
    from attnviz.maps import AttentionMaps

    for cls in (AttentionMaps, Attribution, CamResult, GeneratedAttribution):
        cls._repr_html_ = _repr_html_
        cls._repr_mimebundle_ = _repr_mimebundle_
    _installed = True
