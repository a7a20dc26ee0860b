"""attnviz: see what a Transformer attends to and why it decides what it decides.

The public API is imported lazily so that ``import attnviz`` stays light.
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "AttentionMaps": ("attnviz.maps", "AttentionMaps"),
    "LoadedModel": ("attnviz.models", "LoadedModel"),
    "load_model": ("attnviz.models", "load_model"),
    "capture": ("attnviz.recording", "capture"),
    "attribute": ("attnviz.attribution.tokens", "attribute"),
    "attribute_many": ("attnviz.attribution.tokens", "attribute_many"),
    "explain": ("attnviz.attribution.tokens", "explain"),
    "cam": ("attnviz.attribution.cam", "cam"),
    # what those hand back, and the typed options they take
    "Attribution": ("attnviz.attribution.results", "Attribution"),
    "CamResult": ("attnviz.attribution.results", "CamResult"),
    "Target": ("attnviz.attribution.targets", "Target"),
    "IntegratedOptions": ("attnviz.attribution.methods.options", "IntegratedOptions"),
    "OcclusionOptions": ("attnviz.attribution.methods.options", "OcclusionOptions"),
    "RolloutOptions": ("attnviz.attribution.methods.options", "RolloutOptions"),
    "LayerOptions": ("attnviz.attribution.methods.options", "LayerOptions"),
}
__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'attnviz' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    return getattr(importlib.import_module(module), attr)
