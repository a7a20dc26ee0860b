"""The attribution methods: one registry for token scores (``METHODS``) and one for maps over an image's
patches (``CAM_METHODS``), each entry a plain function with a typed options dataclass.

A text method is ``fn(ctx: Context, options) -> (scores (B, S), extra dict)``; a CAM method is
``fn(p: LivePass, options, layout: Layout) -> token scores (B, S)`` (or a pair with per-head scores
(B, H, S)) that ``attnviz.attribution.cam`` lays on the patch grid. Built-in entries name their function
as "module:function", imported on first use, so that the CLI reads names, options and help without
loading torch. ``register`` adds a method from a function.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Callable

from attnviz.attribution.methods.options import (IntegratedOptions, LayerOptions, NoOptions, OcclusionOptions,
                                                 RolloutOptions)
from attnviz.errors import BadInput
from attnviz.registry import Registry


@dataclass(frozen=True)
class Method:
    """One registered method: its function, its options type and one line of help.

    ``grads``, ``features`` and ``attention`` say what the live pass of a CAM method must keep: gradients
    of the attention, the hidden states entering the chosen block (and their gradient), attention at all.
    """

    function: str | Callable  # "module:function", or the function itself
    options: type = NoOptions
    summary: str = ""
    grads: bool = False
    features: bool = False
    attention: bool = True

    @property
    def fn(self) -> Callable:
        if callable(self.function):
            return self.function
        module, name = self.function.split(":")
        return getattr(importlib.import_module(module), name)


METHODS: Registry[Method] = Registry("attribution method")
CAM_METHODS: Registry[Method] = Registry("cam method")


def register(name: str, options: type = NoOptions, summary: str = "", registry: Registry = METHODS, **needs):
    """Decorator: ``fn`` becomes method ``name`` of ``registry`` (METHODS by default)."""
    def add(fn):
        registry.register(name)(Method(fn, options, summary, **needs))
        return fn
    return add


def option_fields(registry: Registry = METHODS) -> set[str]:
    """Every option name some method of ``registry`` takes."""
    return {f.name for name in registry.names() for f in dataclasses.fields(registry.get(name).options)}


def options_for(method: str, given: Any = None, registry: Registry = METHODS, **fields):
    """The typed options of ``method``: ``given`` itself if it is one, else built from ``fields`` (the
    ones the method takes; a field that no method takes is refused). Building checks every value."""
    spec = registry.get(method)
    if given is not None:
        if not isinstance(given, spec.options):
            raise BadInput(f"{method} takes {spec.options.__name__}, not {type(given).__name__}")
        return given
    unknown = sorted(set(fields) - option_fields(registry))
    if unknown:
        raise BadInput(f"unknown attribution option {unknown[0]!r}; known: {', '.join(sorted(option_fields(registry)))}")
    own = {f.name for f in dataclasses.fields(spec.options)}
    return spec.options(**{k: v for k, v in fields.items() if k in own and v is not None})


def check_fields(registry: Registry = METHODS, **fields) -> None:
    """Check every value of ``fields`` by building the options of each method that takes it."""
    for name in registry.names():
        options_for(name, registry=registry, **fields)


def _builtin(registry: Registry, name: str, function: str, options: type = NoOptions, summary: str = "", **needs):
    registry.register(name)(Method(f"attnviz.attribution.methods.{function}", options, summary, **needs))


_builtin(METHODS, "saliency", "gradients:saliency",
         summary="the gradient's L2 norm per token (Simonyan et al. 2013, arXiv:1312.6034)")
_builtin(METHODS, "grad-x-input", "gradients:grad_x_input",
         summary="gradient times input, summed over the embedding (arXiv:1605.01713); signed")
_builtin(METHODS, "integrated-gradients", "integrated:integrated_gradients", IntegratedOptions,
         "integrated gradients (Sundararajan et al. 2017, arXiv:1703.01365) with a completeness gap")
_builtin(METHODS, "occlusion", "occlusion:occlusion", OcclusionOptions,
         "the target's drop when a window of tokens is hidden (arXiv:1311.2901)")
_builtin(METHODS, "attention", "attention:raw_attention", summary="the last layer's head-mean attention from the target")
_builtin(METHODS, "rollout", "attention:rollout_method", RolloutOptions,
         "attention rollout (Abnar & Zuidema 2020, arXiv:2005.00928)")
_builtin(METHODS, "attention-flow", "attention:flow_method",
         summary="attention flow, a max-flow per token (Abnar & Zuidema 2020); up to 48 tokens")
_builtin(METHODS, "grad-rollout", "attention:grad_rollout_method",
         summary="rollout of gradient-weighted attention, layer by layer")
_builtin(METHODS, "attn-grad", "attention:chefer_method",
         summary="gradient-weighted attention relevance (Chefer et al. 2021, arXiv:2103.15679)")

_builtin(CAM_METHODS, "attn-grad", "cam:attn_grad", summary="gradient-weighted attention relevance "
         "(Chefer et al. 2021, arXiv:2103.15679)", grads=True)
_builtin(CAM_METHODS, "rollout", "cam:rollout", RolloutOptions, "attention rollout (Abnar & Zuidema 2020, "
         "arXiv:2005.00928)")
_builtin(CAM_METHODS, "grad-rollout", "cam:grad_rollout", summary="rollout of gradient-weighted attention, "
         "layer by layer", grads=True)
_builtin(CAM_METHODS, "attn-gradcam", "cam:attn_gradcam", LayerOptions, "Grad-CAM on one layer's CLS attention "
         "(heads weighted by mean gradient)", grads=True)
_builtin(CAM_METHODS, "gradcam", "cam:gradcam", LayerOptions, "Grad-CAM (arXiv:1610.02391) on the tokens "
         "entering a block, as a patch grid", grads=True, features=True, attention=False)
_builtin(CAM_METHODS, "raw", "cam:raw", LayerOptions, "one layer's CLS attention to the patches, mean over heads")
_builtin(CAM_METHODS, "heads", "cam:heads", LayerOptions, "one layer's CLS attention per head (a grid of maps)")

__all__ = ["CAM_METHODS", "METHODS", "IntegratedOptions", "LayerOptions", "Method", "NoOptions", "OcclusionOptions",
           "RolloutOptions", "check_fields", "options_for", "register"]
