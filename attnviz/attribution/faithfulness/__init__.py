"""How faithful an explanation is, measured by one curve engine (``engine``): deletion / insertion curves
and ground-truth agreement for token scores (``text``); perturbation AUC, pointing game and mask IoU for
maps over an image's patches (``images``, its labelled data in ``image_data``)."""

from __future__ import annotations

from attnviz.attribution.faithfulness.engine import area
from attnviz.attribution.faithfulness.text import agreement, curves, faithfulness, ranks, score_all

__all__ = ["agreement", "area", "curves", "faithfulness", "ranks", "score_all"]
