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
    "attribute_generation": ("attnviz.attribution.generation", "attribute_generation"),
    # what those hand back, and the typed options they take
    "Attribution": ("attnviz.attribution.results", "Attribution"),
    "CamResult": ("attnviz.attribution.results", "CamResult"),
    "GeneratedAttribution": ("attnviz.attribution.generation", "GeneratedAttribution"),
    "Target": ("attnviz.attribution.targets", "Target"),
    "IntegratedOptions": ("attnviz.attribution.methods.options", "IntegratedOptions"),
    "OcclusionOptions": ("attnviz.attribution.methods.options", "OcclusionOptions"),
    "RolloutOptions": ("attnviz.attribution.methods.options", "RolloutOptions"),
    "LayerOptions": ("attnviz.attribution.methods.options", "LayerOptions"),
    "show": ("attnviz.notebook", "show"),
}
__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'attnviz' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    found = getattr(importlib.import_module(module), attr)
    # The result types sit below the notebook layer and may not import it (DESIGN.md section 1), so their
    # notebook reprs are attached from there: every result reaches a user through one of these names.
    importlib.import_module("attnviz.notebook").install()
    return found
