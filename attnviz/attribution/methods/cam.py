"""CAM methods: token scores of one live pass of a vision Transformer, which ``attnviz.attribution.cam``
lays on the patch grid. The attention-composition methods (rollout, gradient rollout, Chefer et al.)
are the text methods' own token-score functions read at the CLS row; Grad-CAM reads the hidden states
entering a block instead of attention.

Each function takes the pass, its typed options and the layout (prefix tokens, patch grid) and returns
token scores (B, S), or for the per-head method a pair (B, S), (B, H, S).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnviz.attribution.methods.attention import chefer_scores, grad_rollout_scores, raw_scores, rollout_scores
from attnviz.attribution.methods.options import LayerOptions, RolloutOptions
from attnviz.attribution.passes import LivePass
from attnviz.attribution.vision import Layout


def attn_grad(p: LivePass, options, layout: Layout) -> torch.Tensor:
    """Chefer et al. 2021 (arXiv:2103.15679) relevance of the CLS row: (B, S)."""
    return chefer_scores(p)


def rollout(p: LivePass, options: RolloutOptions, layout: Layout) -> torch.Tensor:
    """Attention rollout (arXiv:2005.00928) of the CLS row: (B, S)."""
    return rollout_scores(p, options)


def grad_rollout(p: LivePass, options, layout: Layout) -> torch.Tensor:
    """Rollout of gradient-weighted attention of the CLS row: (B, S)."""
    return grad_rollout_scores(p)


def attn_gradcam(p: LivePass, options: LayerOptions, layout: Layout) -> torch.Tensor:
    """Chefer et al.'s "GradCAM" baseline: one layer's CLS attention, heads weighted by their mean
    gradient over the patches: (B, S)."""
    cam = p.weights["encoder"][options.layer][:, :, 0]  # (B, H, S)
    grad = p.grads["encoder"][options.layer][:, :, 0, layout.prefix:].mean(dim=-1, keepdim=True)  # (B, H, 1)
    return (cam * grad).mean(dim=1).clamp(min=0)


def gradcam(p: LivePass, options: LayerOptions, layout: Layout) -> torch.Tensor:
    """Grad-CAM (arXiv:1610.02391) on the tokens entering block ``layer``: (B, S), 0 at the prefix."""
    feats, grads = p.features[:, layout.prefix:], p.feature_grads[:, layout.prefix:]  # (B, N, D)
    channel_weights = grads.mean(dim=1, keepdim=True)  # (B, 1, D): Grad-CAM's averaged gradients
    cam = (feats * channel_weights).sum(dim=-1).clamp(min=0)  # (B, N)
    return F.pad(cam, (layout.prefix, 0))  # (B, S)


def raw(p: LivePass, options: LayerOptions, layout: Layout) -> torch.Tensor:
    """One layer's CLS attention, mean over heads: (B, S)."""
    return raw_scores(p, options.layer)


def heads(p: LivePass, options: LayerOptions, layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer's CLS attention per head (B, H, S), and its mean over heads (B, S)."""
    per_head = p.weights["encoder"][options.layer][:, :, 0]  # (B, H, S)
    return per_head.mean(dim=1), per_head
