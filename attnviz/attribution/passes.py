"""The live attention + gradient pass that every attention method reads, for texts and images alike.

One forward pass records each layer's attention weights while they are still in the autograd graph
(``recording(keep_graph=True)``; models that fall back to eager attention hand them back through
``output_attentions``); the target's score is then differentiated with respect to those very tensors,
never a stacked copy. On request the hidden states entering one block are kept with their gradient too
(Grad-CAM reads them).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from attnviz.attribution.context import frozen_params
from attnviz.attribution.targets import Target
from attnviz.attribution.vision import block_input
from attnviz.errors import AttnvizError, BadInput
from attnviz.recording import STACKS, recording


@dataclass
class LivePass:
    """What one pass leaves: attention per stack, its gradients, the target, and the block input.

    ``weights[stack]`` and ``grads[stack]`` are (L, B, H, Q, K), detached, in the dtype the model
    computed; ``grads`` is empty for a pass without gradients, and a layer the score does not depend on
    gets zeros. ``features`` / ``feature_grads`` are (B, S, D) when a feature layer was asked for.
    """

    output: Any  # the model's output of the pass
    target: Target
    weights: dict[str, torch.Tensor]  # stack -> (L, B, H, Q, K)
    grads: dict[str, torch.Tensor]  # stack -> (L, B, H, Q, K) d score / d weights
    features: torch.Tensor | None = None  # (B, S, D) input of the chosen block
    feature_grads: torch.Tensor | None = None  # (B, S, D)


def live_pass(loaded, forward: Callable[[bool], Any], target: Callable[[Any], Target], *, grads: bool,
              module: torch.nn.Module | None = None, attention: bool = True, feature_layer: int | None = None,
              expect_layers: int | None = None) -> LivePass:
    """Run ``forward(eager)`` once with live attention; with ``grads``, differentiate the target's score.

    ``forward(eager)`` runs the model (``eager``: ask it for ``output_attentions``, for models whose
    attention does not run on the attnviz kernel); ``target(output)`` is the Target of the pass. ``module``
    is where attention is recorded (default: the whole model); ``attention=False`` records nothing, so
    the kernel keeps its fused path; ``expect_layers`` refuses a pass without one call per layer.
    """
    module = module if module is not None else loaded.model
    eager = loaded.backend != "attnviz"
    with frozen_params(loaded.model), torch.set_grad_enabled(grads), \
            _recorded(module, attention, eager) as rec, block_input(module, feature_layer) as seen:
        out = forward(eager)
        tgt = target(out)
        live = _eager(loaded, out) if eager else _collect(loaded, rec, expect_layers)
        live = {s: layers for s, layers in live.items() if layers}
        if attention and not live:
            raise AttnvizError(f"no attention was captured from {loaded.name}")
        feats = seen.get("features")
        gradients, feature_grads = _gradients(tgt, out, live, feats, module) if grads else ({}, None)
    weights = {s: torch.stack([w.detach() for w in layers]) for s, layers in live.items()}  # (L, B, H, Q, K)
    return LivePass(out, tgt, weights, gradients, feats.detach() if feats is not None else None, feature_grads)


@contextmanager
def _recorded(module: torch.nn.Module, attention: bool, eager: bool) -> Iterator:
    """Sinks on every layer (none with ``attention=False``); an eager model reports through its output."""
    if eager:
        yield None
        return
    with recording(module, keep_graph=True, layers=None if attention else []) as rec:
        yield rec


def _collect(loaded, rec, expect_layers: int | None) -> dict[str, list[torch.Tensor]]:
    """The live weights of each stack, one tensor (B, H, Q, K) per layer in layer order."""
    if expect_layers is not None:
        layers = rec.layers("encoder")
        if len(layers) != expect_layers or any(len(rec.calls[("encoder", l)]) != 1 for l in layers):
            raise BadInput(f"{loaded.name}: attention was not one full-image call per layer; cannot explain it")
    return {s: rec.per_layer(s) for s in STACKS}


def _eager(loaded, out) -> dict[str, list[torch.Tensor]]:
    enc = getattr(out, "encoder_attentions", None) or getattr(out, "attentions", None)
    live = {"encoder": list(enc or ()), "decoder": list(getattr(out, "decoder_attentions", None) or ()),
            "cross": list(getattr(out, "cross_attentions", None) or ())}
    if len(live["encoder"]) != loaded.num_layers:  # SDPA hands back () rather than failing
        raise AttnvizError(f"eager attention returned {len(live['encoder'])} layers; {loaded.name} has "
                           f"{loaded.num_layers}")
    return live


def _gradients(target: Target, out, live: dict, feats, module) -> tuple[dict, torch.Tensor | None]:
    """d score / d weights per stack (zeros for layers the score does not reach) and d score / d features."""
    device = next(module.parameters()).device
    score = target(out, torch.arange(len(target.describe), device=device)).sum()
    # Decoder self-attention of a seq2seq model does not depend on the source: it gets zeros.
    flat = [w for s in live for w in live[s] if w.requires_grad]
    wanted = flat + ([feats] if feats is not None else [])
    found = torch.autograd.grad(score, wanted, allow_unused=True)
    got = dict(zip(map(id, flat), found))
    grads = {s: torch.stack([torch.zeros_like(w) if got.get(id(w)) is None else got[id(w)] for w in layers])
             for s, layers in live.items()}
    return grads, (found[-1] if feats is not None else None)
