"""Targets of vision Transformers: a class logit, CLIP's similarity to one prompt, or an image embedding
(its norm, or one feature). Their relevance rows are the first token's (CLS): ``Target.rows`` is None."""

from __future__ import annotations

import torch

from attnviz.attribution.targets import TARGETS, Target, TargetSpec, resolve_label
from attnviz.errors import BadInput


def _chosen(logits: torch.Tensor, probs: torch.Tensor, labels: list[str], spec: TargetSpec) -> Target:
    """The logit of one class (or prompt) per example: --target, or each example's most probable one."""
    index = resolve_label(spec.label, labels, probs.argmax(-1).tolist(), noun="target")
    chosen = torch.tensor(index, device=logits.device)  # (B,)
    return Target(
        score=lambda o, ex: _logits(o, spec)[torch.arange(len(ex), device=chosen.device), chosen[ex]],
        prob=lambda o, ex: _logits(o, spec).float().softmax(-1)[torch.arange(len(ex), device=chosen.device), chosen[ex]],
        rows=None, stack="encoder",
        describe=[labels[i] for i in index], prediction=[labels[i] for i in probs.argmax(-1).tolist()],
        probability=[float(probs[b, i]) for b, i in enumerate(index)],
        index=index, labels=list(labels), probs=probs.cpu(),
    )


def _logits(output, spec: TargetSpec) -> torch.Tensor:
    """(B, C) class logits, or (B, P) CLIP's image-text similarity times its temperature."""
    return output.logits_per_image if spec.prompts else output.logits


@TARGETS.register("image-class")
def image_class_target(loaded, batch, out, spec: TargetSpec) -> Target:
    """A classifier's logit of one class; probabilities are softmax or, multi-label, sigmoids."""
    logits = out.logits  # (B, C)
    labels = list(loaded.labels) or [str(i) for i in range(logits.shape[-1])]
    return _chosen(logits, loaded.class_probs(logits.detach()), labels, spec)


@TARGETS.register("clip-prompt")
def clip_prompt_target(loaded, batch, out, spec: TargetSpec) -> Target:
    """A full CLIP model's similarity of the image to one of the prompts (default: the best match)."""
    logits = out.logits_per_image  # (B, P)
    return _chosen(logits, logits.detach().float().softmax(-1), list(spec.prompts), spec)


def _pooled(output) -> torch.Tensor:
    pooled = getattr(output, "pooler_output", None)
    return pooled if pooled is not None else output.last_hidden_state[:, 0]  # (B, D)


@TARGETS.register("image-embedding")
def image_embedding_target(loaded, batch, out, spec: TargetSpec) -> Target:
    """An image encoder without classes: the embedding's norm, or with --target N its feature N."""
    pooled = _pooled(out)  # (B, D)
    b = pooled.shape[0]
    if spec.label is None or spec.label == "":
        norm = lambda o, ex: _pooled(o).norm(dim=-1)  # noqa: E731
        return Target(score=norm, prob=norm, rows=None, stack="encoder", describe=["embedding norm"] * b,
                      prediction=["embedding norm"] * b, probability=pooled.detach().norm(dim=-1).tolist(),
                      index=[-1] * b)
    index = resolve_label(spec.label, [], [0] * b, noun="target")
    if not 0 <= index[0] < pooled.shape[-1]:
        raise BadInput(f"target {index[0]} is out of range; this embedding has {pooled.shape[-1]} features")
    feature = lambda o, ex: _pooled(o)[:, index[0]]  # noqa: E731
    return Target(score=feature, prob=feature, rows=None, stack="encoder", describe=[f"feature {index[0]}"] * b,
                  prediction=[f"feature {index[0]}"] * b, probability=pooled.detach()[:, index[0]].tolist(),
                  index=index)
