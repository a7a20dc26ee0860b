"""attnviz: see what a Transformer attends to and why it decides what it decides.

The public API is imported lazily so that ``import attnviz`` stays light.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["AttentionMaps", "LoadedModel", "attribute", "cam", "capture", "load_model", "__version__"]

_LAZY = {
    "AttentionMaps": ("attnviz.maps", "AttentionMaps"),
    "LoadedModel": ("attnviz.models", "LoadedModel"),
    "load_model": ("attnviz.models", "load_model"),
    "capture": ("attnviz.recording", "capture"),
    "attribute": ("attnviz.attribution", "attribute"),
    "cam": ("attnviz.attribution.cam", "cam"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'attnviz' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    return getattr(importlib.import_module(module), attr)
