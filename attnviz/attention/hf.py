"""Registration of the kernel with transformers, and the preflight that decides kernel vs eager.

A custom attention function gets ``attention_mask=None`` unless a mask function is registered
under the same name, so the kernel is registered together with transformers' SDPA mask: a boolean
mask (True = attend), or None where SDPA would use ``is_causal`` (causal, no padding), which the
kernel then reads as SDPA does (``kernel.is_causal``) and builds block by block. Eager's float mask
would be a (B, 1, Q, K) float tensor on every call: 256 MiB at 8K tokens.

Which families dispatch through the attention interface changes between transformers releases
(GPT-J fell back to eager on 5.23 and dispatches on 5.24), so the choice is made from behaviour: a
model is loaded with the kernel, runs one short probe input, and keeps the kernel only if every one
of its attention modules called it (DESIGN.md section 3).
"""

from __future__ import annotations

from typing import Callable

import torch

from attnviz.attention.kernel import SINK, attention
from attnviz.attention.sites import attention_sites

NAME = "attnviz"


def register() -> str:
    """Register the kernel and its mask function under ``attnviz``; safe to call again."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME


class _Count:
    """A sink that only counts the kernel's calls on its module."""

    def __init__(self):
        self.calls = 0

    def __call__(self, weights: torch.Tensor) -> None:  # (B, H, Q, K)
        self.calls += 1


def dispatches(model: torch.nn.Module, run: Callable[[], object]) -> bool:
    """Whether every attention module of ``model`` computes its attention in the kernel when ``run()``
    runs a forward pass; the counting sinks are always removed."""
    sites = attention_sites(model)
    counters = {site.name: _Count() for site in sites}
    try:
        for site in sites:
            setattr(site.module, SINK, counters[site.name])
        with torch.inference_mode():
            run()
    finally:
        for site in sites:
            if hasattr(site.module, SINK):
                delattr(site.module, SINK)
    return bool(sites) and all(c.calls > 0 for c in counters.values())


def preflight(model: torch.nn.Module, run: Callable[[], object]) -> str:
    """The backend ``model`` (loaded with ``attn_implementation="attnviz"``) runs on: ``attnviz`` when every
    attention module calls the kernel, else ``eager`` (switched to transformers' eager attention, whose
    ``output_attentions`` gives the weights)."""
    if dispatches(model, run):
        return NAME
    model.set_attn_implementation("eager")
    if model.config._attn_implementation != "eager":
        # A family that computes attention in its own code (BLOOM) keeps its config's name through the switch, and
        # that code adds the mask it gets from the mask function registered under the name: eager's float mask.
        model.config._attn_implementation = "eager"
    return "eager"
