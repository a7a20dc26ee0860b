"""Recording: the sinks the kernel reports each attention call into, installed and always removed.

``recording(model)`` puts a sink on each chosen attention module (found by ``attention.sites``). A plain sink
keeps the weights (B, H, Q, K); under a statistics plan the sink asks the kernel for query blocks instead and
reduces them (``attnviz.stats``), keeping full rows only for the query range asked for.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

from attnviz.attention.kernel import SINK
from attnviz.stats import BlockStats, rows_per_block
from attnviz.attention.sites import STACKS, AttentionSite, attention_sites
from attnviz.errors import BadInput
from attnviz.recording.plan import BLOCK_BYTES, GPU_BLOCK_BYTES, Plan

STORE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


class Recording:
    """What the sinks received: (stack, layer) -> list of weights (B, H, Q, K), one per call.

    Each stack gets one (layer, B, h, Q, K) buffer in the store dtype on the CPU, allocated at its first call: the
    kernel's softmax writes into it directly when the weights are kept as computed (all heads, float32, on the CPU),
    and the sink copies the kept heads into it, converted, otherwise; stacking copies nothing.
    """

    def __init__(self, sites: list[AttentionSite], chosen: list[AttentionSite]):
        self.sites = sites
        self.calls: dict[tuple[str, int], list[torch.Tensor]] = {}
        self.order = {s: [c.layer for c in chosen if c.stack == s] for s in STACKS}  # chosen layers per stack
        self.buffers: dict[str, torch.Tensor] = {}
        self.stats: dict[tuple[str, int], BlockStats] = {}  # under a statistics plan

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
                # shared layers (ALBERT), two passes per layer (DiffLlama), recurrence: the calls cannot be told apart
                raise BadInput(f"{stack} layer {layer} ran attention {n} times in one forward pass (shared layers, "
                               "several attention passes per layer, or several towers); attnviz keeps one map per "
                               "layer and cannot tell the calls apart")
        return [self.calls[(stack, layer)][0] for layer in self.layers(stack)]

    def statistics(self, stack: str) -> dict[str, torch.Tensor]:
        """name -> (layer, B, h, ...) of one stack under a statistics plan (``attnviz.stats``), in layer order: the
        kept heads (the sinks reduce only those)."""
        self.per_layer(stack)  # each module called once
        found = [self.stats[(stack, layer)].result() for layer in self.layers(stack)]
        return {name: torch.stack([f[name] for f in found]) for name in (found[0] if found else {})}

    def stacked(self, stack: str) -> torch.Tensor | None:
        """(layer, B, H, Q, K) of one stack, in layer order; each module must have been called once."""
        layers = self.layers(stack)
        found = self.per_layer(stack)
        if not found or any(w is None for w in found):  # a statistics plan that kept no full rows
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
    plan: Plan | None = None,
    masks: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    sites: list[AttentionSite] | None = None,
    query_rows: tuple[int, int] | None = None,
) -> Iterator[Recording]:
    """Install sinks on the chosen layers' attention modules; always removes them on exit.

    ``keep_graph`` keeps the live weights (on their device, in the graph) for gradient methods;
    otherwise weights are detached, cut to ``heads`` and moved to the CPU in ``store_dtype``. Under a statistics
    ``plan``, ``masks`` gives each stack's (query mask (B, Q), key mask (B, K)), 1 on real positions. ``sites``: the
    model's attention modules where they are known already (``LoadedModel.sites``). ``query_rows`` [start, stop):
    keep only those query rows of each map (B, H, n, K); a layer on the fused path computes no other row.
    """
    sites = attention_sites(model) if sites is None else sites
    chosen = [s for s in sites if layers is None or s.layer in layers]
    rec = Recording(sites, chosen)
    try:
        for site in chosen:
            sink = (_StatsSink(rec, site, heads, store_dtype, plan, (masks or {}).get(site.stack))
                    if plan is not None and plan.stats else
                    _Sink(rec, site, heads, store_dtype, keep_graph, query_rows))
            setattr(site.module, SINK, sink)
        yield rec
    finally:
        for site in chosen:
            if hasattr(site.module, SINK):
                delattr(site.module, SINK)


class _Sink:
    """Receives one attention module's weights; offers the kernel the slot of the recording's buffer they go into."""

    def __init__(self, rec: Recording, site: AttentionSite, heads, store_dtype, keep_graph: bool,
                 query_rows: tuple[int, int] | None = None):
        self.rec, self.key, self.heads = rec, (site.stack, site.layer), heads
        self.store_dtype, self.keep_graph, self.query_rows = store_dtype, keep_graph, query_rows
        self.slot: torch.Tensor | None = None  # offered for the call in progress

    def target(self, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> torch.Tensor | None:
        """The slot (B, h, Q, K), in the store dtype on the CPU, that this call's weights (B, H, Q, K) of ``dtype`` go
        into, or None to hand them over. The kernel writes into it when it is exactly the weights; otherwise
        ``__call__`` copies the kept heads into it, converted, so no other copy of them is ever kept."""
        self.slot = None
        if self.keep_graph or self.query_rows:  # only some rows are kept: the kernel computes the whole map
            return None
        kept = shape if self.heads is None else torch.Size((shape[0], len(self.heads), *shape[2:]))
        self.slot = self.rec.slot(*self.key, kept, self.store_dtype)
        return self.slot

    def __call__(self, weights: torch.Tensor, first: int = 0) -> None:  # (B, H, Q, K), rows from query ``first``
        if self.query_rows:  # the kept rows of what came (the whole map where the kernel could not compute fewer)
            weights = weights[:, :, max(0, self.query_rows[0] - first): self.query_rows[1] - first]
            weights = weights.clone() if first == 0 else weights  # a view would keep the whole map alive
        if not self.keep_graph:
            weights = weights.detach()
            if self.heads is not None:
                weights = weights[:, self.heads]  # (B, h, Q, K)
            if self.slot is not None:  # already there when the kernel wrote into it
                written = weights.data_ptr() == self.slot.data_ptr() and weights.dtype == self.slot.dtype
                weights = self.slot if written else self.slot.copy_(weights)
            else:
                weights = weights.to("cpu", self.store_dtype)
        self.slot = None
        self.rec.calls.setdefault(self.key, []).append(weights)


class _StatsSink(_Sink):
    """Under a statistics plan the kernel hands over blocks of query rows (``block_rows``, then ``block``): they
    are reduced to statistics, and only the rows of ``plan.queries`` are kept whole."""

    def __init__(self, rec: Recording, site: AttentionSite, heads, store_dtype, plan: Plan, masks):
        super().__init__(rec, site, heads, store_dtype, False)
        self.plan, self.masks = plan, masks
        self.stats: BlockStats | None = None
        self.rows: torch.Tensor | None = None  # (B, h, kept queries, K)

    def target(self, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> None:
        return None  # statistics keep no (Q, K) per layer: the weights are handed over and reduced

    def block_rows(self, shape: tuple[int, int, int, int], device: torch.device | None = None) -> int:
        """Start one call of ``shape`` (B, H, Q, K) computed on ``device``; returns the queries per block."""
        b, h, q, k = shape
        q_mask, k_mask = self.masks if self.masks is not None else (torch.ones(b, q), torch.ones(b, k))
        if tuple(q_mask.shape) != (b, q) or tuple(k_mask.shape) != (b, k):  # e.g. a vision model's patches
            q_mask, k_mask = torch.ones(b, q), torch.ones(b, k)
        first = k_mask.float().argmax(-1)  # (B,) each example's first real key: its sink token
        kept = h if self.heads is None else len(self.heads)  # only the kept heads are reduced
        self.stats = self.rec.stats[self.key] = BlockStats((b, kept, q, k), first, q_mask, self.plan.top_k,
                                                           self.plan.overview)
        if self.plan.queries is not None:
            lo, hi = min(self.plan.queries[0], q), min(self.plan.queries[1], q)
            self.rows = torch.zeros(b, kept, hi - lo, k, dtype=self.store_dtype)
        self.rec.calls.setdefault(self.key, []).append(self.rows)
        return rows_per_block(b, h, k, block_budget(device, self.plan.max_memory))

    def block(self, weights: torch.Tensor, start: int, scores: torch.Tensor | None = None) -> None:
        """Rows ``start .. start + n`` of the weights (B, H, n, W <= K), and the scores the softmax took (which the
        statistics overwrite); both are the kernel's buffers, reused by the next block, so nothing keeps them. Only
        the kept heads are reduced (a copy of their rows where heads are chosen)."""
        if self.heads is not None:
            weights = weights[:, self.heads]
            scores = scores[:, self.heads] if scores is not None else None
        self.stats.add(weights, start, scores)
        if self.rows is None:
            return
        lo, hi = self.plan.queries[0], self.plan.queries[0] + self.rows.shape[2]
        a, b = max(start, lo), min(start + weights.shape[2], hi)
        if a < b:
            part = weights[:, :, a - start: b - start].detach()
            self.rows[:, :, a - lo: b - lo, : part.shape[-1]] = part.to("cpu", self.store_dtype)  # keys past W: 0

    def __call__(self, weights: torch.Tensor) -> None:  # the full path ran (gradients on): reduce it in one block
        self.block_rows(tuple(weights.shape), weights.device)
        self.block(weights, 0)


def block_budget(device: torch.device | None, max_memory: int | None = None) -> int:
    """Bytes of one query block: ``BLOCK_BYTES`` on the CPU; on a GPU ``GPU_BLOCK_BYTES``, a tenth of its free
    memory or a quarter of ``max_memory`` (what the capture may use), whichever is least, and never less than the
    CPU's (fewer, larger blocks: a 128K-token layer in thousands of blocks, not 100,000s)."""
    if device is None or torch.device(device).type != "cuda" or not torch.cuda.is_available():
        return BLOCK_BYTES
    cap = min(GPU_BLOCK_BYTES, torch.cuda.mem_get_info(device)[0] // 10)
    return max(BLOCK_BYTES, cap if max_memory is None else min(cap, max_memory // 4))
