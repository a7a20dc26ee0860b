"""The analysis of one report batch: one captured pass gives attention and the model's output."""

from __future__ import annotations

import torch

from attnviz.attribution.analysis import analyse_batch, prediction
from attnviz.models import load_model
from attnviz.recording import capture


def test_a_batch_gives_the_captured_attention_the_output_and_each_method():
    loaded = load_model("toy-sentiment", device="cpu")
    texts = ["not good at all", "很好"]
    done = analyse_batch(loaded, texts, ("saliency", "rollout"))
    assert torch.equal(done.maps.weights, capture(loaded, texts).weights)
    with torch.no_grad():
        logits = loaded.model(**loaded.encode(texts).batch).logits
    assert torch.allclose(done.output.logits, logits, atol=1e-6)
    assert set(done.attributions) == {"saliency", "rollout"} and done.error is None and done.cams is None
    assert all("faithfulness" in a.extra for a in done.attributions.values())
    p = prediction(loaded, done.output, done.maps, 0)
    assert p == {"label": loaded.labels[int(logits[0].argmax())], "probability": round(float(logits[0].softmax(-1).max()), 4)}


def test_an_attribution_error_keeps_the_attention_and_an_image_batch_gets_its_cams():
    from conftest import picture

    seq2seq = load_model("toy-seq2seq", device="cpu")
    done = analyse_batch(seq2seq, ["abc"], ("attention-flow",))
    assert done.attributions == {} and done.error.startswith("attribution: attention-flow explains encoder")
    assert done.maps.weights.shape[1] == 1 and done.maps.cross is not None
    shapes = load_model("toy-shapes", device="cpu")
    images = [picture(40, 40, seed=i) for i in range(2)]
    done = analyse_batch(shapes, images)
    assert done.cams.maps.shape[0] == 2 and done.cams.method == "attn-grad"
