"""``capture()``: inputs through a loaded model under a recording -> AttentionMaps.

Full maps keep (layer, batch, head, query, key); a statistics plan keeps the per-head statistics of
``attnviz.stats`` (and full rows of a query range), computed block by block, so a long input never holds L x L.
"""

from __future__ import annotations

import os
from dataclasses import replace

import torch

from attnviz.attention.sites import STACKS
from attnviz.stats import of_weights
from attnviz.errors import AttnvizError, BadInput
from attnviz.maps import AttentionMaps, check_indices
from attnviz.recording.plan import Plan, Shape, default_budget, gpu_budget, resolve
from attnviz.recording.sinks import STORE_DTYPES, recording


def capture(
    loaded,
    inputs,
    *,
    layers: list[int] | None = None,
    heads: list[int] | None = None,
    store_dtype: torch.dtype = torch.float32,
    on_long: str = "truncate",
    keep: str = "full",
    top_k: int = 8,
    overview: int = 64,
    queries: tuple[int, int] | None = None,
    max_memory: int | None = None,
    answers=None,
) -> AttentionMaps:
    """Run ``inputs`` (texts or images; one alone is a batch of one) through ``loaded`` and keep its attention.

    ``keep="full"`` keeps weights (layer, B, h, Q, K); ``"stats"`` keeps per-head statistics (``attnviz.stats``:
    entropy, sink, distance (layer, B, h, Q), received (layer, B, h, K), overview (layer, B, h, R, R), top-k keys
    (layer, B, h, Q, k)) computed block by block, plus full rows of ``queries`` (start, stop); ``"auto"`` keeps full
    maps where they fit in ``max_memory`` bytes (default: a safe share of free memory). What cannot fit is refused
    (BadInput) before the model runs. An encoder-decoder's decoder reads ``answers`` (``models.seq2seq.Answers``:
    the model's own answer, at most so many new tokens, or a given one; default: ``loaded.answers``).
    """
    if isinstance(inputs, (str, os.PathLike)) or hasattr(inputs, "getpixel"):  # one text, path or PIL image
        inputs = [inputs]
    check_indices(heads, loaded.num_heads, "head")
    check_indices(layers, loaded.num_layers, "layer")
    if loaded.meta.get("windowed"):  # Swin: per-window attention is no (layer, B, H, L, L) stack
        raise BadInput(loaded.meta["windowed"])
    plan = Plan(keep=keep, top_k=top_k, overview=overview, queries=queries, max_memory=max_memory)
    store_dtype = STORE_DTYPES.get(store_dtype, store_dtype) if isinstance(store_dtype, str) else store_dtype
    if store_dtype not in STORE_DTYPES.values():
        raise BadInput(f"store_dtype must be float32 or float16, not {store_dtype!r}")
    if layers is not None:
        layers = sorted(set(layers))  # recorded stacks come out in layer order; the labels must match
    enc = loaded.encode(inputs, on_long=on_long, answers=answers)  # after the checks: an encoder-decoder decodes here
    plan, notes = _resolve(plan, loaded, enc, layers, heads, store_dtype)
    masks = _masks(enc)
    with torch.inference_mode():
        if loaded.backend == "attnviz":
            stacks, stats = _run_recorded(loaded, enc.batch, layers, heads, store_dtype, plan, masks)
        else:
            stacks, stats = _run_eager(loaded, enc.batch, layers, heads, store_dtype, plan, masks)
    main = "encoder" if stacks["encoder"] is not None or any(k.startswith("encoder.") for k in stats) else "decoder"
    return AttentionMaps(
        weights=stacks[main],
        mask=enc.mask.cpu(),
        tokens=enc.tokens,
        pieces=enc.pieces,
        bounds=enc.bounds,
        layers=layers if layers is not None else list(range(loaded.num_layers)),
        heads=heads if heads is not None else list(range(loaded.num_heads)),
        model=loaded.name,
        kind=loaded.kind,
        num_layers=loaded.num_layers,
        num_heads=loaded.num_heads,
        backend=loaded.backend,
        decoder=stacks["decoder"] if main == "encoder" else None,
        cross=stacks["cross"],
        decoder_mask=enc.decoder_mask.cpu() if enc.decoder_mask is not None else None,
        decoder_tokens=enc.decoder_tokens,
        special=list(loaded.special_tokens),
        notes=enc.notes + _backend_note(loaded) + notes,
        stats={(k.split(".", 1)[1] if k.startswith(main + ".") else k): v for k, v in stats.items()},
        query_start=plan.queries[0] if plan.stats and plan.queries else 0,
    )


def _resolve(plan: Plan, loaded, enc, layers, heads, store_dtype) -> tuple[Plan, list[str]]:
    """The plan with ``auto`` decided from the estimate; a plan that cannot fit is refused here, before the run."""
    b, seq = enc.mask.shape
    shape = Shape(batch=b, queries=seq, keys=seq, layers=len(layers) if layers else loaded.num_layers,
                  heads=len(heads) if heads else loaded.num_heads, model_heads=loaded.num_heads,
                  store_bytes=torch.finfo(store_dtype).bits // 8)
    eager = 0 if loaded.backend == "attnviz" else loaded.num_layers  # output_attentions hands every layer back
    keep, _, note = resolve(plan, shape, plan.max_memory or default_budget(), gpu_budget(loaded.model, plan.max_memory),
                            eager)
    if plan.queries is not None and plan.queries[0] >= seq:
        raise BadInput(f"--queries starts at {plan.queries[0]}, but the longest input has {seq} positions")
    return replace(plan, keep=keep), [note] if note else []


def _masks(enc) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each stack's (query mask, key mask): 1 on real positions."""
    source = enc.mask.cpu()
    target = enc.decoder_mask.cpu() if enc.decoder_mask is not None else source
    return {"encoder": (source, source), "decoder": (target, target), "cross": (target, source)}


def _backend_note(loaded) -> list[str]:
    if loaded.backend == "attnviz":
        return []
    return [f"{loaded.architecture or loaded.name} does not dispatch through the attention interface; "
            "captured with eager attention and output_attentions"]


def _expect_layers(stacks: dict, stats: dict, loaded, layers) -> None:
    """A capture that saw fewer layers than the model has is an error, never an empty picture."""
    want = len(layers) if layers is not None else loaded.num_layers
    counts = {name: w.shape[0] for name, w in stacks.items() if w is not None}
    counts.update({k.split(".")[0]: v.shape[0] for k, v in stats.items()})
    for name, got in counts.items():
        if got != want:
            raise AttnvizError(f"captured {got} {name} layers but the model has {want}; capture is incomplete")
    if not counts:
        raise AttnvizError(f"no attention was captured from {loaded.name} ({loaded.backend} backend)")


def _run_recorded(loaded, batch, layers, heads, store_dtype, plan, masks) -> tuple[dict, dict]:
    module = loaded.forward_module
    with recording(module, layers=layers, heads=heads, store_dtype=store_dtype, plan=plan, masks=masks) as rec:
        module(**batch)
    stacks = {s: rec.stacked(s) for s in STACKS}
    stats = {f"{s}.{name}": t for s in STACKS if plan.stats and rec.layers(s)
             for name, t in rec.statistics(s).items()}
    _expect_layers(stacks, stats, loaded, layers)
    return stacks, stats


def _run_eager(loaded, batch, layers, heads, store_dtype, plan, masks) -> tuple[dict, dict]:
    """Fallback for models that do not dispatch through the attention interface; statistics from the full weights."""
    out = loaded.forward_module(**batch, output_attentions=True)
    found = {
        "encoder": getattr(out, "encoder_attentions", None) or getattr(out, "attentions", None),
        "decoder": getattr(out, "decoder_attentions", None),
        "cross": getattr(out, "cross_attentions", None),
    }
    stacks, stats = {}, {}
    for name, seq in found.items():
        if not seq:  # None or () (SDPA returns an empty tuple): nothing for this stack
            stacks[name] = None
            continue
        chosen = [seq[i] for i in (layers if layers is not None else range(len(seq)))]
        weights = torch.stack(chosen)  # (layer, B, H, Q, K)
        if heads is not None:
            weights = weights[:, :, heads]
        stacks[name] = weights.to("cpu", store_dtype)
        if plan.stats:
            per = of_weights(weights, *masks[name], top_k=plan.top_k, overview=plan.overview)
            stats.update({f"{name}.{k}": v for k, v in per.items()})
            stacks[name] = _rows(stacks[name], plan.queries)
    if len(found["encoder"] or ()) != loaded.num_layers:
        got = len(found["encoder"] or ())
        raise AttnvizError(f"eager fallback returned {got} layers of attention but the model has {loaded.num_layers}")
    _expect_layers(stacks, stats, loaded, layers)
    return stacks, stats


def _rows(weights: torch.Tensor, queries: tuple[int, int] | None) -> torch.Tensor | None:
    return None if queries is None else weights[:, :, :, queries[0]:queries[1]].contiguous()
