"""One batch of report items: capture attention (and the model's output in the same pass), attribution,
and the per-item record that summary.json and report.html are made of."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from attnviz.recording import capture
from attnviz.errors import AttnvizError, BadInput
from attnviz.models.loaded import token_names
from attnviz.report import summary
from attnviz.report.html import encode_attention, encode_image, thumbnail


FAITH_KEYS = ("deletion_auc", "insertion_auc", "top1", "topk")


def prepare(loaded, items, on_long: str) -> list[tuple[object, int, str | None]]:
    """(model input, length, error) per item: images are opened, texts measured in tokens."""
    if on_long not in ("skip", "truncate"):
        raise BadInput(f"--on-long must be skip or truncate, not {on_long!r}")
    if loaded.kind == "vision":
        return [_open_image(it) for it in items]
    texts = [it.text if it.text is not None else "" for it in items]
    if any(it.image is not None for it in items):
        return [(None, 0, "an image, but the model reads text") if it.image else (it.text, 0, None) for it in items]
    lengths = [len(ids) for ids in loaded.tokenizer(texts, truncation=False, padding=False,
                                                    return_tensors=None)["input_ids"]] if texts else []
    out = []
    for text, n in zip(texts, lengths):
        too_long = n > loaded.max_length and on_long == "skip"
        error = f"{n} tokens, longer than the model's maximum of {loaded.max_length}" if too_long else None
        out.append((text, min(n, loaded.max_length), error))
    return out


def _open_image(item):
    if item.image is None:
        return None, 0, "a text, but the model reads images"
    from attnviz.images import load_image

    try:
        return load_image(item.image), 0, None
    except (AttnvizError, OSError, ValueError) as err:
        return None, 0, f"unreadable image ({err})"


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
    cams = _cams(loaded, inputs) if _explainable_image(loaded) else [None] * len(inputs)
    li = maps.layer_index(cfg.layer)
    hi = maps.head_index(cfg.head)
    results = []
    for e, (item, value, _) in enumerate(batch):
        valid = maps.valid(e)
        tokens = [maps.tokens[e][i] for i in valid.tolist()]
        weights = maps.weights[:, e][:, :, valid][:, :, :, valid].float().numpy()  # (L, H, n, n)
        record = _record(loaded, item, value, tokens, weights, maps, seen[-1] if seen else None, e)
        record["attribution"] = {m: _attribution(a, e) for m, a in attributions.items() if m != "error"}
        if "error" in attributions:
            record["notes"].append(attributions["error"])
        if cams[e] is not None:
            record["cam"] = cams[e]
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
        "entropy": [[round(float(v), 4) for v in row] for row in entropy], "mean_entropy": round(float(entropy.mean()), 4),
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
    p = row.softmax(-1) if loaded.task == "causal-lm" else loaded.class_probs(row)
    i = int(p.argmax())
    if loaded.task == "causal-lm":
        return {"label": str(token_names(loaded.tokenizer, [i])[0]), "probability": round(float(p[i]), 4)}
    names = [loaded.labels[j] if j < len(loaded.labels) else str(j) for j in range(len(p))]
    out = {"label": names[i], "probability": round(float(p[i]), 4)}
    if loaded.multi_label:  # every class above one half, most probable first: "label" is only the top one
        out["present"] = [{"label": names[j], "probability": round(float(p[j]), 4)}
                          for j in p.argsort(descending=True).tolist() if p[j] > 0.5]
    return out


def _attributions(loaded, inputs, methods) -> dict:
    """Every method on the whole batch, with faithfulness (deletion/insertion areas) where available."""
    if not methods:
        return {}
    from attnviz.attribution import explain

    try:
        return {a.method: a for a in explain(loaded, inputs, methods=list(methods))}
    except AttnvizError as err:
        # The attention views are still good: the item is kept and says why it has no attribution.
        return {"error": f"attribution: {err}"}


def _attribution(attr, e: int) -> dict:
    real = (attr.mask[e] > 0).nonzero().flatten().tolist()
    tokens = [attr.tokens[e][i] for i in real]
    scores = attr.scores[e, real].float().numpy()
    entry = {"scores": [round(float(v), 5) for v in scores], "tokens": tokens,
             "top": summary.top_tokens(scores, tokens),
             "target": attr.target[e] if attr.target else None}
    faith = attr.extra.get("faithfulness") if isinstance(attr.extra, dict) else None
    if isinstance(faith, (list, tuple)) and len(faith) > e and isinstance(faith[e], dict):
        # the areas and agreement only: the curves themselves would dominate summary.json
        entry["faithfulness"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in faith[e].items()
                                 if k in FAITH_KEYS and v is not None}
    return entry


def _explainable_image(loaded) -> bool:
    """A full CLIP model explains an image only against prompts, which a report does not take: no CAM."""
    from attnviz.attribution.vision import is_full_clip

    return loaded.kind == "vision" and not is_full_clip(loaded)


def _cams(loaded, images: list) -> list[dict | None]:
    """A CAM per image (attnviz.attribution.cam), as a small grid plus the box of the image the model saw."""
    from attnviz.attribution.cam import cam

    res = cam(loaded, images)
    out = []
    for grid, box, image in zip(res.maps, res.boxes or [None] * len(images), images):
        entry = thumbnail(grid.float().numpy(), size=64)
        w, h = image.size
        left, top, right, bottom = box or (0, 0, w, h)
        entry.update(method=res.method, box=[left / w, top / h, right / w, bottom / h],
                     target=res.target[len(out)] if res.target else None)
        out.append(entry)
    return out
