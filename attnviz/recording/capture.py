"""``capture()``: inputs through a loaded model under a recording -> AttentionMaps.

Full maps keep (layer, batch, head, query, key); a statistics plan keeps the per-head statistics of
``attention.stats`` (and full rows of a query range), computed block by block, so a long input never holds L x L.
"""

from __future__ import annotations

import os

import torch

from attnviz.attention.sites import STACKS
from attnviz.errors import AttnvizError, BadInput
from attnviz.maps import AttentionMaps, check_indices
from attnviz.recording.sinks import STORE_DTYPES, recording


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
