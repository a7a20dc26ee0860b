"""Where a model computes attention: its attention modules, the stack and layer of each.

Attention modules are found once from ``named_modules()`` (never from call order): the leaf-most
modules whose class name contains "Attention". Their layer number is their rank among the distinct
layer paths of their stack; encoder self-, decoder self- and cross-attention are separate stacks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

STACKS = ("encoder", "decoder", "cross")
_CROSS_NAMES = ("encoder_attn", "crossattention", "encdecattention", "cross_attn")


@dataclass(frozen=True)
class AttentionSite:
    name: str  # dotted module path from named_modules()
    module: torch.nn.Module
    stack: str  # encoder | decoder | cross
    layer: int  # layer number within its stack


def _stack_of(name: str, module: torch.nn.Module) -> str:
    fixed = getattr(module, "attnviz_stack", None)
    if fixed:
        return fixed
    lowered = name.lower()
    if getattr(module, "is_cross_attention", False) or any(c in lowered for c in _CROSS_NAMES):
        return "cross"
    return "decoder" if "decoder" in lowered.split(".") else "encoder"


def layer_path(name: str) -> str:
    """The layer a module belongs to: its path up to the first numbered part ("encoder.layer.3"), or ""."""
    match = re.match(r"(.*?\.\d+)(\.|$)", name)
    return match.group(1) if match else ""


def attention_sites(model: torch.nn.Module) -> list[AttentionSite]:
    """Every attention module of ``model`` with its stack and layer number."""
    named = [(n, m) for n, m in model.named_modules() if "Attention" in type(m).__name__]
    names = [n for n, _ in named]
    leaves = [(n, m) for n, m in named if not any(o.startswith(n + ".") for o in names if o != n)]
    layer_paths: dict[str, list[str]] = {s: [] for s in STACKS}
    sites = []
    for name, module in leaves:
        stack = _stack_of(name, module)
        path = layer_path(name)
        if path not in layer_paths[stack]:
            layer_paths[stack].append(path)
        sites.append(AttentionSite(name, module, stack, layer_paths[stack].index(path)))
    return sites
