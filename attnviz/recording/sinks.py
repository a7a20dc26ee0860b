"""Recording attention weights from the kernel, and ``capture()`` -> AttentionMaps.

``recording(model)`` installs a sink on each chosen attention module (found by ``attention.sites``) that
the kernel reports its weights into, and always removes them; ``capture()`` runs inputs under it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch

from attnviz.attention.kernel import SINK
from attnviz.attention.sites import STACKS, AttentionSite, attention_sites
from attnviz.errors import AttnvizError, BadInput
from attnviz.maps import AttentionMaps, check_indices

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


def capture(
    loaded,
    inputs,
    *,
    layers: list[int] | None = None,
    heads: list[int] | None = None,
    store_dtype: torch.dtype = torch.float32,
    on_long: str = "truncate",
) -> AttentionMaps:
    """Run ``inputs`` (texts or images; one alone is a batch of one) through ``loaded`` and keep its attention."""
    if isinstance(inputs, (str, os.PathLike)) or hasattr(inputs, "getpixel"):  # one text, path or PIL image
        inputs = [inputs]
    check_indices(heads, loaded.num_heads, "head")
    check_indices(layers, loaded.num_layers, "layer")
    store_dtype = STORE_DTYPES.get(store_dtype, store_dtype) if isinstance(store_dtype, str) else store_dtype
    if store_dtype not in STORE_DTYPES.values():
        raise BadInput(f"store_dtype must be float32 or float16, not {store_dtype!r}")
    if layers is not None:
        layers = sorted(set(layers))  # recorded stacks come out in layer order; the labels must match
    enc = loaded.encode(inputs, on_long=on_long)  # after the checks: an encoder-decoder decodes here
    with torch.inference_mode():
        if loaded.backend == "attnviz":
            stacks = _run_recorded(loaded, enc.batch, layers, heads, store_dtype)
        else:
            stacks = _run_eager(loaded, enc.batch, layers, heads, store_dtype)
    return AttentionMaps(
        weights=stacks["encoder"] if stacks["encoder"] is not None else stacks["decoder"],
        mask=enc.mask.cpu(),
        tokens=enc.tokens,
        layers=layers if layers is not None else list(range(loaded.num_layers)),
        heads=heads if heads is not None else list(range(loaded.num_heads)),
        model=loaded.name,
        kind=loaded.kind,
        num_layers=loaded.num_layers,
        num_heads=loaded.num_heads,
        backend=loaded.backend,
        decoder=stacks["decoder"] if stacks["encoder"] is not None else None,
        cross=stacks["cross"],
        decoder_mask=enc.decoder_mask.cpu() if enc.decoder_mask is not None else None,
        decoder_tokens=enc.decoder_tokens,
        special=list(loaded.special_tokens),
        notes=enc.notes + _backend_note(loaded),
    )


def _backend_note(loaded) -> list[str]:
    if loaded.backend == "attnviz":
        return []
    return [f"{loaded.architecture or loaded.name} does not dispatch through the attention interface; "
            "captured with eager attention and output_attentions"]


def _expect_layers(stacks: dict, loaded, layers) -> None:
    """A capture that saw fewer layers than the model has is an error, never an empty picture."""
    want = len(layers) if layers is not None else loaded.num_layers
    for name, weights in stacks.items():
        got = 0 if weights is None else weights.shape[0]
        if weights is not None and got != want:
            raise AttnvizError(f"captured {got} {name} layers but the model has {want}; capture is incomplete")
    if all(w is None for w in stacks.values()):
        raise AttnvizError(f"no attention was captured from {loaded.name} ({loaded.backend} backend)")


def _run_recorded(loaded, batch, layers, heads, store_dtype) -> dict:
    module = loaded.forward_module
    with recording(module, layers=layers, heads=heads, store_dtype=store_dtype) as rec:
        module(**batch)
    stacks = {s: rec.stacked(s) for s in STACKS}
    _expect_layers(stacks, loaded, layers)
    return stacks


def _run_eager(loaded, batch, layers, heads, store_dtype) -> dict:
    """Fallback for models that do not dispatch through the attention interface."""
    out = loaded.forward_module(**batch, output_attentions=True)
    found = {
        "encoder": getattr(out, "encoder_attentions", None) or getattr(out, "attentions", None),
        "decoder": getattr(out, "decoder_attentions", None),
        "cross": getattr(out, "cross_attentions", None),
    }
    stacks = {}
    for name, seq in found.items():
        if not seq:  # None or () (SDPA returns an empty tuple): nothing for this stack
            stacks[name] = None
            continue
        chosen = [seq[i] for i in (layers if layers is not None else range(len(seq)))]
        weights = torch.stack(chosen)  # (layer, B, H, Q, K)
        if heads is not None:
            weights = weights[:, :, heads]
        stacks[name] = weights.to("cpu", store_dtype)
    if len(found["encoder"] or ()) != loaded.num_layers:
        got = len(found["encoder"] or ())
        raise AttnvizError(f"eager fallback returned {got} layers of attention but the model has {loaded.num_layers}")
    _expect_layers(stacks, loaded, layers)
    return stacks
