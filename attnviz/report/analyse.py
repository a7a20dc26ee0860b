"""One batch of report items: capture attention (and the model's output in the same pass), attribution,
and the per-item record that summary.json and report.html are made of."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from attnviz.capture import capture
from attnviz.errors import AttnvizError, BadInput
from attnviz.report import summary
from attnviz.report.html import encode_attention, encode_image, thumbnail


def prepare(loaded, items, on_long: str) -> list[tuple[object, int, str | None]]:
    """(model input, length, error) per item: images are opened, texts measured in tokens."""
    if on_long not in ("skip", "truncate"):
        raise BadInput(f"--on-long must be skip or truncate, not {on_long!r}")
    if loaded.kind == "vision":
        return [_open_image(it) for it in items]
    texts = [it.text if it.text is not None else "" for it in items]
    if any(it.image is not None for it in items):
        return [(None, 0, "an image, but the model reads text") if it.image else (it.text, 0, None) for it in items]
    lengths = [len(ids) for ids in loaded.tokenizer(texts, truncation=False, padding=False)["input_ids"]] if texts else []
    out = []
    for text, n in zip(texts, lengths):
        too_long = n > loaded.max_length and on_long == "skip"
        error = f"{n} tokens, longer than the model's maximum of {loaded.max_length}" if too_long else None
        out.append((text, min(n, loaded.max_length), error))
    return out


def _open_image(item):
    if item.image is None:
        return None, 0, "a text, but the model reads images"
    try:
        from attnviz.images import load_image
    except ImportError:
        load_image = _pil_image
    try:
        return load_image(item.image), 0, None
    except (AttnvizError, OSError, ValueError) as err:
        return None, 0, f"unreadable image ({err})"


def _pil_image(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


@contextmanager
def model_outputs(model: torch.nn.Module):
    """The outputs of every forward pass of ``model`` while active, so capture's pass also gives logits."""
    seen: list = []
    handle = model.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        yield seen
    finally:
        handle.remove()


def run_batch(loaded, batch: list, cfg):
    """Yield (item, record, paint-job fields, error) per item; a failing batch is retried item by item."""
    try:
        yield from _run(loaded, batch, cfg)
    except (AttnvizError, RuntimeError, ValueError) as err:
        if len(batch) == 1:
            yield batch[0][0], None, None, _reason(err)
            return
        for one in batch:
            yield from run_batch(loaded, [one], cfg)


def _reason(err: Exception) -> str:
    return str(err) if isinstance(err, AttnvizError) else f"{type(err).__name__}: {err}"


def _run(loaded, batch: list, cfg) -> list:
    inputs = [value for _, value, _ in batch]
    on_long = "truncate"  # over-long inputs were already skipped unless truncation was asked for
    with model_outputs(loaded.model) as seen:
        maps = capture(loaded, inputs, on_long=on_long)
    attributions = _attributions(loaded, inputs, cfg.methods)
    li = maps.layer_index(cfg.layer)
    hi = maps.head_index(cfg.head)
    results = []
    for e, (item, value, _) in enumerate(batch):
        valid = maps.valid(e)
        tokens = [maps.tokens[e][i] for i in valid.tolist()]
        weights = maps.weights[:, e][:, :, valid][:, :, :, valid].float().numpy()  # (L, H, n, n)
        record = _record(loaded, item, value, tokens, weights, maps, seen[-1] if seen else None, e)
        record["attribution"] = {m: _attribution(a, e) for m, a in attributions.items()}
        if loaded.kind == "vision":
            record["cam"] = _cam(loaded, value)
        job = dict(views=cfg.views, weights=weights, tokens=tokens, layers=maps.layers, heads=maps.heads,
                   layer=li, head=hi, title=maps.model or "model", dpi=cfg.dpi)
        results.append((item, record, job, None))
    return results


def _record(loaded, item, value, tokens, weights, maps, out, e) -> dict:
    entropy = summary.head_entropy(weights)  # (L, H)
    record = {
        "id": item.id, "text": item.text, "image": item.image.name if item.image else None,
        "target": item.target, "reference": item.reference, "tokens": tokens,
        "prediction": _prediction(loaded, out, maps, e),
        "layers": maps.layers, "heads": maps.heads,
        "entropy": np.round(entropy, 4).tolist(), "mean_entropy": round(float(entropy.mean()), 4),
        "most_attended": summary.most_attended(weights, tokens, set(maps.special)),
        "notes": [n for n in maps.notes if n.startswith(f"input {e + 1} ")],
        "view": encode_attention(weights, maps.layers),
        "thumb": thumbnail(weights[-1].mean(axis=0)),
    }
    if value is not None and hasattr(value, "convert"):
        record["image_data"] = encode_image(value)
    return record


def _prediction(loaded, out, maps, e: int) -> dict | None:
    logits = getattr(out, "logits", None)
    if loaded.task == "seq2seq" and maps.decoder_tokens:
        real = [t for t, m in zip(maps.decoder_tokens[e], maps.decoder_mask[e].tolist()) if m and t not in maps.special]
        return {"label": " ".join(real)}
    if logits is None or loaded.task not in ("classification", "image-classification", "causal-lm"):
        return None
    row = logits[e].float()
    if loaded.task == "causal-lm":
        row = row[int(maps.valid(e)[-1])]  # the next token after the last real one
    p = row.softmax(-1)
    i = int(p.argmax())
    if loaded.task == "causal-lm":
        label = loaded.tokenizer.convert_ids_to_tokens([i])[0]
    else:
        label = loaded.labels[i] if i < len(loaded.labels) else str(i)
    return {"label": str(label), "probability": round(float(p[i]), 4)}


def _attributions(loaded, inputs, methods) -> dict:
    if not methods:
        return {}
    try:
        from attnviz.attribution import attribute
    except ImportError:
        raise BadInput("attribution methods are not available in this installation") from None
    return {m: attribute(loaded, inputs, method=m, target=None) for m in methods}


def _attribution(attr, e: int) -> dict:
    real = (attr.mask[e] > 0).nonzero().flatten().tolist()
    tokens = [attr.tokens[e][i] for i in real]
    scores = attr.scores[e, real].float().numpy()
    entry = {"scores": np.round(scores, 5).tolist(), "tokens": tokens,
             "top": summary.top_tokens(scores, tokens),
             "target": attr.target[e] if attr.target else None}
    faith = attr.extra.get("faithfulness") if isinstance(attr.extra, dict) else None
    if faith is not None:
        entry["faithfulness"] = _jsonable(faith, e)
    return entry


def _jsonable(value, e: int):
    """Per-example value of an extra field that may be a tensor, a list per example or a dict of those."""
    if isinstance(value, dict):
        return {k: _jsonable(v, e) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        value = value[e] if len(value) > e else None
    return round(float(value), 4) if isinstance(value, (int, float)) else value


def _cam(loaded, image) -> dict | None:
    """A CAM grid for an image where attnviz.attribution.cam has landed; None otherwise."""
    try:
        from attnviz.attribution.cam import cam
    except ImportError:
        return None
    grid = cam(loaded, [image])
    grid = getattr(grid, "grid", grid)
    arr = np.asarray(grid.detach().cpu().float() if isinstance(grid, torch.Tensor) else grid, dtype=np.float32)
    return thumbnail(arr.reshape(arr.shape[-2:]), size=64)
