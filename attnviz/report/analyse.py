"""One batch of report items: the model inputs they become, and the per-item record that summary.json
and report.html are made of, from the batch's analysis (``attnviz.attribution.analysis``)."""

from __future__ import annotations

import numpy as np

from attnviz.attribution.analysis import analyse_batch, prediction
from attnviz.errors import AttnvizError, BadInput
from attnviz.report import summary
from attnviz.report.html import encode_attention, encode_image, encode_png, thumbnail


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
    lengths = loaded.token_counts(texts) if texts else []  # as the model reads them (a question-context pair)
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


LONG_TOKENS = 512  # above this an item's L x L canvas is no use to a reader: its statistics are shown instead


def _run(loaded, batch: list, cfg) -> list:
    inputs = [value for _, value, _ in batch]
    keep = "stats" if cfg.keep == "auto" and max(n for _, _, n in batch) > LONG_TOKENS else cfg.keep
    done = analyse_batch(loaded, inputs, tuple(cfg.methods), keep=keep, max_memory=cfg.max_memory)
    maps = done.maps
    if maps.weights is None:
        nothing = dict(views=(), weights=np.zeros((0, 0, 0, 0), np.float32), tokens=[], layers=maps.layers,
                       heads=maps.heads, layer=0, head=0, title=maps.model or "model", dpi=cfg.dpi)  # drawn here
        return [(item, _long_record(loaded, item, maps, done, e, cfg), nothing, None)
                for e, (item, _, _) in enumerate(batch)]
    cams = _cams(done.cams, inputs) if done.cams is not None else [None] * len(inputs)
    li = maps.layer_index(cfg.layer)
    hi = maps.head_index(cfg.head)
    results = []
    for e, (item, value, _) in enumerate(batch):
        valid = maps.valid(e)
        tokens = [maps.tokens[e][i] for i in valid.tolist()]
        weights = maps.weights[:, e][:, :, valid][:, :, :, valid].float().numpy()  # (L, H, n, n)
        record = _record(loaded, item, value, tokens, weights, maps, done.output, e)
        record["attribution"] = {m: _attribution(a, e) for m, a in done.attributions.items()}
        if done.error:
            record["notes"].append(done.error)
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
        "prediction": prediction(loaded, out, maps, e),
        "layers": maps.layers, "heads": maps.heads,
        "entropy": [[round(float(v), 4) for v in row] for row in entropy], "mean_entropy": round(float(entropy.mean()), 4),
        "most_attended": summary.most_attended(weights, tokens, set(maps.special)),
        "notes": _notes(loaded, maps, e),
        "view": encode_attention(weights, maps.layers),
        "thumb": thumbnail(weights[-1].mean(axis=0)),
    }
    if value is not None and hasattr(value, "convert"):
        record["image_data"] = encode_image(value)
    return record


def _notes(loaded, maps, e: int) -> list[str]:
    """The batch's notes about input ``e``, after the one every input shares: a head shown without it."""
    head = loaded.meta.get("head")
    return [n for n in maps.notes if n == head] + [n for n in maps.notes if n.startswith(f"input {e + 1} ")]


def _long_record(loaded, item, maps, done, e: int, cfg) -> dict:
    """The record of an input whose capture kept per-head statistics: numbers from them, and the overview and
    positions views as PNGs (embedded in report.html, written beside item.json) instead of an L x L canvas."""
    from dataclasses import replace

    from attnviz.render.long import long_view
    from attnviz.render.output import figure_bytes

    valid = maps.valid(e)
    tokens = [maps.tokens[e][i] for i in valid.tolist()]
    entropy = maps.entropy[:, e][:, :, valid].float().mean(-1).numpy()  # (L, H): mean over real queries
    received = maps.received[:, e][:, :, valid].float().numpy()  # (L, H, n)
    one = replace(maps, tokens=[maps.tokens[e]], mask=maps.mask[e:e + 1],
                  stats={k: v[:, e:e + 1] for k, v in maps.stats.items()})  # (layer, 1, head, ...)
    pngs = {v: figure_bytes(long_view(one, v, layer=cfg.layer, head=cfg.head), "png", dpi=cfg.dpi)
            for v in ("overview", "positions")}
    record = {
        "id": item.id, "text": item.text, "image": item.image.name if item.image else None,
        "target": item.target, "reference": item.reference, "tokens": tokens,
        "prediction": prediction(loaded, done.output, maps, e), "layers": maps.layers, "heads": maps.heads,
        "entropy": [[round(float(v), 4) for v in row] for row in entropy], "mean_entropy": round(float(entropy.mean()), 4),
        "most_attended": summary.most_attended(received[:, :, None, :] / max(len(tokens), 1), tokens, set(maps.special)),
        "notes": _notes(loaded, maps, e) + [
            f"{len(tokens)} tokens: per-head statistics shown instead of the L x L maps"],
        "thumb": thumbnail(maps.overview[-1, e].float().mean(0).numpy()),
        "long": {v: encode_png(png) for v, png in pngs.items()}, "long_png": pngs,
        "attribution": {m: _attribution(a, e) for m, a in done.attributions.items()},
    }
    return record


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


def _cams(res, images: list) -> list[dict]:
    """A CAM per image, as a small grid plus the box of the image the model saw (fractions of its size)."""
    out = []
    for grid, box, image in zip(res.maps, res.boxes or [None] * len(images), images):
        entry = thumbnail(grid.float().numpy(), size=64)
        w, h = image.size
        left, top, right, bottom = box or (0, 0, w, h)
        entry.update(method=res.method, box=[left / w, top / h, right / w, bottom / h],
                     target=res.target[len(out)] if res.target else None)
        out.append(entry)
    return out
