"""Attribution: explain a model's decision, for texts (token scores) and images (maps over patches).

One target type (``targets``), one live attention + gradient pass (``passes``), the methods with their
typed options (``methods``), one faithfulness curve engine (``faithfulness``). ``attribute`` runs one
method on texts (``tokens``), ``attribute_many`` several on one shared batch, ``explain`` adds
faithfulness; ``cam.cam`` maps images. Names load lazily, so that the registries and options load without torch.
"""

from __future__ import annotations

import importlib

from attnviz.attribution.methods import (CAM_METHODS, METHODS, IntegratedOptions, LayerOptions, NoOptions,
                                         OcclusionOptions, RolloutOptions)

_LAZY = {
    "Attribution": "results", "CamResult": "results", "Context": "context", "Target": "targets",
    "TargetSpec": "targets", "attribute": "tokens", "attribute_many": "tokens", "explain": "tokens",
    "prepare": "tokens", "run_method": "tokens", "method_options": "tokens", "normalise": "cam",
    "analyse_batch": "analysis", "BatchAnalysis": "analysis",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'attnviz.attribution' has no attribute {name!r}")
    return getattr(importlib.import_module(f"attnviz.attribution.{_LAZY[name]}"), name)


__all__ = ["CAM_METHODS", "METHODS", "IntegratedOptions", "LayerOptions", "NoOptions", "OcclusionOptions",
           "RolloutOptions", *_LAZY]
