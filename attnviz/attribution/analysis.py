"""The analysis of one batch of report items: attention captured in one pass that also gives the model's
output, every attribution method on the batch, and a CAM per image. Pure computation: ``attnviz.report``
turns the result into its records and files.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from attnviz.attribution.results import Attribution, CamResult
from attnviz.errors import AttnvizError
from attnviz.maps import AttentionMaps
from attnviz.models.loaded import token_names
from attnviz.recording import capture


@dataclass
class BatchAnalysis:
    """What one batch of B inputs gives: ``maps`` (weights (L, B, H, S, S)), the model's ``output`` of the
    same pass (None if it gave none), token scores per method (or ``error``: why there are none), and
    for an image model ``cams`` (maps (B, gh, gw))."""

    maps: AttentionMaps
    output: Any = None
    attributions: dict[str, Attribution] = field(default_factory=dict)
    error: str | None = None
    cams: CamResult | None = None


@contextmanager
def model_outputs(model: torch.nn.Module) -> Iterator[list]:
    """The outputs of every forward pass of ``model`` while active, so capture's pass also gives logits."""
    seen: list = []
    handle = model.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        yield seen
    finally:
        handle.remove()


def analyse_batch(loaded, inputs: list, methods: tuple[str, ...] = (), *, keep: str = "full",
                  max_memory: int | None = None) -> BatchAnalysis:
    """Capture, attribution (with faithfulness) and CAM of one batch of texts or images (already checked
    for length: over-long inputs are truncated). An attribution error leaves the attention intact.
    ``keep`` and ``max_memory`` are capture's: under statistics ``maps.weights`` is None (long inputs)."""
    with model_outputs(loaded.model) as seen:
        maps = capture(loaded, inputs, on_long="truncate", keep=keep, max_memory=max_memory)
    result = BatchAnalysis(maps, seen[-1] if seen else None)
    if methods:
        from attnviz.attribution.tokens import explain

        try:
            result.attributions = {a.method: a for a in explain(loaded, inputs, methods=list(methods))}
        except AttnvizError as err:
            result.error = f"attribution: {err}"
    if explainable_image(loaded):
        from attnviz.attribution.cam import cam

        result.cams = cam(loaded, inputs)
    return result


def explainable_image(loaded) -> bool:
    """A full CLIP model explains an image only against prompts, which a report does not take: no CAM."""
    from attnviz.attribution.vision import is_full_clip

    return loaded.kind == "vision" and not is_full_clip(loaded)


def prediction(loaded, output, maps: AttentionMaps, e: int) -> dict | None:
    """Example ``e``'s prediction: {"label", "probability"} (a multi-label model adds "present": every
    class above one half); a seq2seq model's output text; None where the task has none."""
    logits = getattr(output, "logits", None)
    if loaded.task == "seq2seq" and maps.decoder_tokens:
        real = [t for t, m in zip(maps.decoder_tokens[e], maps.decoder_mask[e].tolist()) if m and t not in maps.special]
        return {"label": " ".join(real)}
    if logits is None or loaded.task not in ("classification", "image-classification", "causal-lm"):
        return None
    row = logits[e].float()  # (C,) or (S, V)
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
