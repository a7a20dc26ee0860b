"""Attribution on the trained toy-sentiment: completeness, ground-truth agreement, randomisation check."""

from __future__ import annotations

import copy

import pytest
import torch

from attnviz.attribution import attribute_many
from attnviz.attribution.faithfulness import agreement, score_all
from attnviz.attribution.truth import generated
from attnviz.models import load_model

N = 40  # fresh examples per check


@pytest.fixture(scope="module")
def sentiment():
    return load_model("toy-sentiment", device="cpu")


@pytest.fixture(scope="module")
def examples():
    return generated("toy-sentiment", N, seed=20240607)


def test_completeness_gap_is_under_one_percent_at_50_steps(sentiment, examples):
    texts, _ = examples
    _, (ig,) = attribute_many(sentiment, texts, methods=["integrated-gradients"], steps=50)
    gaps = torch.tensor(ig.extra["completeness_gap"])
    delta = torch.tensor(ig.extra["score_difference"]).abs()
    # Over the whole set: |sum(attr) - dF| summed, relative to the summed |dF|.
    assert float((gaps * delta).sum() / delta.sum()) <= 0.01
    assert float(gaps.median()) <= 0.01


@pytest.mark.parametrize("method", ["integrated-gradients", "grad-x-input"])
def test_a_deciding_word_is_top_1_on_90_percent(sentiment, examples, method):
    texts, truth = examples
    ctx, (attr,) = attribute_many(sentiment, texts, methods=[method], steps=32)
    top1, topk = agreement(ctx, attr.scores.abs(), truth)  # a deciding word may push either way (a negator)
    top1, topk = [t for t in top1 if t is not None], [t for t in topk if t is not None]  # neutral: no word decides
    assert len(top1) >= N // 2
    assert sum(top1) / len(top1) >= 0.9, sum(top1)
    assert sum(topk) / len(topk) > 0.5


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = a.argsort().argsort().float(), b.argsort().argsort().float()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp(min=1e-12))


@pytest.mark.parametrize("method", ["saliency", "grad-x-input", "integrated-gradients"])
def test_model_randomisation_breaks_gradient_explanations(sentiment, examples, method):
    """Adebayo et al. 2018 (arXiv:1810.03292): an explanation that survives re-initialised weights explains nothing."""
    texts, _ = examples
    texts = texts[:20]
    _, (trained,) = attribute_many(sentiment, texts, methods=[method], steps=16)
    shuffled = copy.copy(sentiment)
    shuffled.model = copy.deepcopy(sentiment.model)
    torch.manual_seed(1)
    for module in shuffled.model.modules():
        if hasattr(module, "reset_parameters") and module is not shuffled.model:
            module.reset_parameters()
    _, (random,) = attribute_many(shuffled, texts, methods=[method], steps=16)
    special = trained.mask.bool() & ~torch.isin(torch.tensor(
        [[sentiment.tokenizer.convert_tokens_to_ids(t) for t in row] for row in trained.tokens]),
        torch.tensor(sentiment.tokenizer.all_special_ids))
    rhos = [_spearman(trained.scores[e][special[e]], random.scores[e][special[e]]) for e in range(len(texts))]
    assert sum(rhos) / len(rhos) < 0.5


def test_faithfulness_prefers_integrated_gradients_to_a_reversed_ranking(sentiment, examples):
    texts, truth = examples
    ctx, (ig,) = attribute_many(sentiment, texts[:12], methods=["integrated-gradients"], steps=32)
    flipped = copy.copy(ig)
    flipped.scores, flipped.extra = -ig.scores, {}
    score_all(ctx, [ig, flipped], truth[:12])
    dele = [sum(f["deletion_auc"] for f in a.extra["faithfulness"]) for a in (ig, flipped)]
    ins = [sum(f["insertion_auc"] for f in a.extra["faithfulness"]) for a in (ig, flipped)]
    assert dele[0] < dele[1] and ins[0] > ins[1]
