"""Layers that keep their inputs, not their activations, and run again during the backward pass.

Activation recomputation (Chen et al. 2016, arXiv:1604.06174) for input gradients: integrated
gradients' backward pass then holds one layer's activations instead of every layer's, at the cost of
one more forward pass of the recomputed layers. The forward pass runs without autograd, and the
backward pass asks only for gradients of the layer's inputs (parameters are frozen), so no weight
gradients are made. A call whose arguments hold anything but tensors and plain values (a key-value
cache, say, which running the layer twice would change) runs as usual.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

PLAIN = (type(None), bool, int, float, str, torch.dtype, torch.device)


class _Recompute(torch.autograd.Function):
    """apply(call, *inputs) -> the layer's tensor outputs; ``call`` (a _Call) puts the inputs back in place."""

    @staticmethod
    def forward(ctx, call, *inputs):
        ctx.call = call
        ctx.save_for_backward(*inputs)
        out, spec = tree_flatten(_run(call, inputs))
        call.box.update(spec=spec, out=out)  # the caller rebuilds the output's structure from these
        return tuple(t for t in out if isinstance(t, torch.Tensor))

    @staticmethod
    def backward(ctx, *grads):
        inputs = [t.detach().requires_grad_(True) for t in ctx.saved_tensors]
        with torch.enable_grad():
            out = [t for t in tree_flatten(_run(ctx.call, inputs))[0] if isinstance(t, torch.Tensor)]
        pairs = [(o, g) for o, g in zip(out, grads) if g is not None and o.requires_grad]
        found = torch.autograd.grad([o for o, _ in pairs], inputs, [g for _, g in pairs], allow_unused=True)
        return (None, *found)


class _Call:
    """A layer call with its differentiable tensors taken out: ``slots`` says where they go back."""

    def __init__(self, forward, leaves, spec, slots):
        self.forward, self.leaves, self.spec, self.slots, self.box = forward, leaves, spec, slots, {}


def _run(call: _Call, inputs):
    leaves = list(call.leaves)
    for i, t in zip(call.slots, inputs):
        leaves[i] = t
    args, kwargs = tree_unflatten(leaves, call.spec)
    return call.forward(*args, **kwargs)


def _call(forward, args, kwargs):
    leaves, spec = tree_flatten((args, kwargs))
    slots = [i for i, t in enumerate(leaves) if isinstance(t, torch.Tensor) and t.requires_grad]
    if not slots or not torch.is_grad_enabled() or not all(isinstance(t, (torch.Tensor, *PLAIN)) for t in leaves):
        return forward(*args, **kwargs)
    call = _Call(forward, [None if i in slots else t for i, t in enumerate(leaves)], spec, slots)
    tensors = iter(_Recompute.apply(call, *[leaves[i] for i in slots]))
    out = [next(tensors) if isinstance(t, torch.Tensor) else t for t in call.box.pop("out")]
    return tree_unflatten(out, call.box.pop("spec"))


@contextmanager
def recomputed(layers: list[torch.nn.Module]) -> Iterator[None]:
    """``layers`` recompute their activations in the backward pass while the context is open."""
    own = [layer.__dict__.get("forward") for layer in layers]  # an instance-level forward (a hook's wrapper), or None
    for layer in layers:
        forward = layer.forward
        layer.forward = lambda *a, _f=forward, **kw: _call(_f, a, kw)
    try:
        yield
    finally:
        for layer, before in zip(layers, own):
            if before is None:
                del layer.forward  # the class's own forward again
            else:
                layer.forward = before
