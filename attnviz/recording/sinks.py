"""Recording: the sinks the kernel reports each attention call into, installed and always removed.

``recording(model)`` puts a sink on each chosen attention module (found by ``attention.sites``). A plain sink
keeps the weights (B, H, Q, K); under a statistics plan the sink asks the kernel for query blocks instead and
reduces them (``attention.stats``), keeping full rows only for the query range asked for.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from attnviz.attention.kernel import SINK
from attnviz.attention.sites import STACKS, AttentionSite, attention_sites
from attnviz.errors import AttnvizError

STORE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


class Recording:
    """What the sinks received: (stack, layer) -> list of weights (B, H, Q, K), one per call.

    When weights are kept as computed (no head selection, same dtype, on the CPU), each stack gets one
    (layer, B, H, Q, K) buffer that the kernel's softmax writes into directly, so stacking copies nothing.
    """

    def __init__(self, sites: list[AttentionSite], chosen: list[AttentionSite]):
        self.sites = sites
        self.calls: dict[tuple[str, int], list[torch.Tensor]] = {}
        self.order = {s: [c.layer for c in chosen if c.stack == s] for s in STACKS}  # chosen layers per stack
        self.buffers: dict[str, torch.Tensor] = {}

    def layers(self, stack: str) -> list[int]:
        return sorted(layer for s, layer in self.calls if s == stack)

    def slot(self, stack: str, layer: int, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor | None:
        buf = self.buffers.get(stack)
        if buf is None:
            buf = self.buffers[stack] = torch.empty((len(self.order[stack]), *shape), dtype=dtype)
        if buf.shape[1:] != shape or buf.dtype != dtype or len(self.calls.get((stack, layer), ())):
            return None
        return buf[self.order[stack].index(layer)]  # (B, H, Q, K)

    def per_layer(self, stack: str) -> list[torch.Tensor]:
        """The weights of each layer of one stack, in layer order; each module must have been called once."""
        for layer in self.layers(stack):
            n = len(self.calls[(stack, layer)])
            if n != 1:
                raise AttnvizError(f"{stack} layer {layer} ran attention {n} times in one forward pass")
        return [self.calls[(stack, layer)][0] for layer in self.layers(stack)]

    def stacked(self, stack: str) -> torch.Tensor | None:
        """(layer, B, H, Q, K) of one stack, in layer order; each module must have been called once."""
        layers = self.layers(stack)
        found = self.per_layer(stack)
        if not found:
            return None
        buf = self.buffers.get(stack)
        if buf is not None and layers == self.order[stack] and all(
            w.data_ptr() == buf[i].data_ptr() and w.shape == buf.shape[1:] for i, w in enumerate(found)
        ):
            return buf
        return torch.stack(found)


@contextmanager
def recording(
    model: torch.nn.Module,
    *,
    layers: list[int] | None = None,
    heads: list[int] | None = None,
    store_dtype: torch.dtype = torch.float32,
    keep_graph: bool = False,
) -> Iterator[Recording]:
    """Install sinks on the chosen layers' attention modules; always removes them on exit.

    ``keep_graph`` keeps the live weights (on their device, in the graph) for gradient methods;
    otherwise weights are detached, cut to ``heads`` and moved to the CPU in ``store_dtype``.
    """
    sites = attention_sites(model)
    chosen = [s for s in sites if layers is None or s.layer in layers]
    rec = Recording(sites, chosen)
    try:
        for site in chosen:
            setattr(site.module, SINK, _Sink(rec, site, heads, store_dtype, keep_graph))
        yield rec
    finally:
        for site in chosen:
            if hasattr(site.module, SINK):
                delattr(site.module, SINK)


class _Sink:
    """Receives one attention module's weights; may offer the kernel a slot to write them into."""

    def __init__(self, rec: Recording, site: AttentionSite, heads, store_dtype, keep_graph: bool):
        self.rec, self.key, self.heads = rec, (site.stack, site.layer), heads
        self.store_dtype, self.keep_graph = store_dtype, keep_graph

    def target(self, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> torch.Tensor | None:
        """Where the kernel may put this call's weights (B, H, Q, K), or None to hand them over."""
        if self.keep_graph or self.heads is not None or dtype != self.store_dtype or device.type != "cpu":
            return None
        return self.rec.slot(*self.key, shape, dtype)

    def __call__(self, weights: torch.Tensor) -> None:  # (B, H, Q, K)
        if not self.keep_graph:
            weights = weights.detach()
            if self.heads is not None:
                weights = weights[:, self.heads]  # (B, h, Q, K)
            weights = weights.to("cpu", self.store_dtype)
        self.rec.calls.setdefault(self.key, []).append(weights)
