"""Attribution methods on small seeded toys: hand-computed cases, captum equivalence, the method contract."""

from __future__ import annotations

import pytest
import torch

from attnviz.attribution import METHODS, OcclusionOptions, attribute, attribute_many, prepare
from attnviz.attribution.context import frozen_params
from attnviz.attribution.methods.integrated import path_gradients
from attnviz.attribution.methods.relevance import rollout
from attnviz.errors import BadInput
from attnviz.models import load_model

TEXTS = ["the movie was not good", "我喜欢"]


@pytest.fixture(scope="module")
def encoder():
    return load_model("toy-encoder", device="cpu")


def test_integrated_gradients_equal_captum(encoder):
    from captum.attr import IntegratedGradients

    ctx = prepare(encoder, TEXTS, chunk=16)
    ours = attribute(encoder, TEXTS, method="integrated-gradients", steps=50)
    from attnviz.attribution.context import baseline

    x0 = baseline(ctx, "pad")
    cls = torch.tensor([encoder.labels.index(p) for p in ours.prediction])

    def forward(embeds):
        reps = embeds.shape[0] // ctx.size
        return encoder.model(inputs_embeds=embeds, attention_mask=ctx.mask.repeat(reps, 1)).logits

    ig = IntegratedGradients(forward)
    theirs = ig.attribute(ctx.embeds, baselines=x0, target=cls, n_steps=50, internal_batch_size=16).sum(-1)
    theirs = theirs.masked_fill(ctx.mask == 0, 0.0)
    rel = (ours.scores - theirs).abs().max() / theirs.abs().max()
    assert rel <= 1e-5, rel


def test_running_sum_does_not_depend_on_the_chunk_size(encoder):
    ctx = prepare(encoder, TEXTS, chunk=2)
    from attnviz.attribution.context import baseline

    x0 = baseline(ctx, "zeros")
    small = path_gradients(ctx, ctx.embeds, x0, 20, "riemann_trapezoid")
    ctx.chunk = 64
    big = path_gradients(ctx, ctx.embeds, x0, 20, "riemann_trapezoid")
    assert torch.allclose(small, big, atol=1e-6)


def test_steps_auto_stops_at_the_first_step_count_under_a_one_percent_gap():
    """Fixed-step runs say which count first brings every example's gap under 1%: auto must stop there,
    with that run's very scores (a case where the first count is not enough, so neither 8 nor 256 passes)."""
    from attnviz.attribution.methods.options import AUTO_GAP, AUTO_STEPS

    sentiment = load_model("toy-sentiment", device="cpu")
    fixed = {}
    for n in AUTO_STEPS:
        fixed[n] = attribute(sentiment, TEXTS, method="integrated-gradients", steps=n, rule="riemann_middle")
        if max(fixed[n].extra["completeness_gap"]) < AUTO_GAP:
            break
    first = n
    assert AUTO_GAP == 0.01 and AUTO_STEPS[0] < first < AUTO_STEPS[-1]
    auto = attribute(sentiment, TEXTS, method="integrated-gradients", steps="auto", rule="riemann_middle")
    assert auto.extra["steps"] == first and auto.params["steps"] == "auto"
    assert torch.equal(auto.scores, fixed[first].scores)
    assert auto.extra["completeness_gap"] == fixed[first].extra["completeness_gap"]


@pytest.mark.parametrize("method", METHODS.names())
@pytest.mark.parametrize("name", ["toy-encoder", "toy-decoder", "toy-seq2seq"])
def test_every_method_keeps_the_contract(name, method):
    loaded = load_model(name, device="cpu")
    if method == "attention-flow" and loaded.task == "seq2seq":
        with pytest.raises(BadInput, match="rollout or attn-grad"):
            attribute(loaded, TEXTS, method=method)
        return
    a = attribute(loaded, TEXTS, method=method, steps=8)
    b, s = a.mask.shape
    assert a.method == method and a.scores.shape == (b, s) and a.scores.dtype == torch.float32
    assert torch.isfinite(a.scores).all()
    assert (a.scores[a.mask == 0] == 0).all()
    assert len(a.target) == len(a.prediction) == len(a.probability) == b == 2
    assert a.scores[a.mask > 0].abs().sum() > 0


def test_frozen_params_are_restored_after_an_exception(encoder):
    with pytest.raises(RuntimeError):
        with frozen_params(encoder.model):
            assert not any(p.requires_grad for p in encoder.model.parameters())
            raise RuntimeError("boom")
    assert all(p.requires_grad for p in encoder.model.parameters())


def test_bad_targets_name_the_valid_choices(encoder):
    with pytest.raises(BadInput, match="valid labels: 0 class 0, 1 class 1"):
        attribute(encoder, TEXTS, method="saliency", target="7")
    with pytest.raises(BadInput, match="unknown label 'happy'"):
        attribute(encoder, TEXTS, method="saliency", target="happy")
    with pytest.raises(BadInput, match="--reference does not fit.*classification model use --target"):
        attribute(encoder, TEXTS, method="saliency", reference="x")
    with pytest.raises(BadInput, match="--target-token does not fit"):
        attribute(encoder, TEXTS, method="saliency", target_token=1)
    decoder = load_model("toy-decoder", device="cpu")
    with pytest.raises(BadInput, match="past the text .* valid positions: 0-3"):
        attribute(decoder, ["我喜欢"], method="saliency", target_token=9)
    with pytest.raises(BadInput, match="unknown attribution method 'magic'; known: saliency"):
        attribute(encoder, TEXTS, method="magic")


def test_decoder_target_token_and_label_choice(encoder):
    decoder = load_model("toy-decoder", device="cpu")
    a = attribute(decoder, ["abcabc"], method="grad-x-input", target_token=2, target="c")
    assert a.target == ["next token 'c' after 'b' (input position 2)"]
    assert (a.scores[0, 3:] == 0).all()  # a causal model's position 2 cannot see later tokens
    b = attribute(encoder, TEXTS, method="saliency", target="class 1")
    assert b.target == ["label class 1"] * 2


def test_attention_flow_refuses_long_inputs():
    sentiment = load_model("toy-sentiment", device="cpu")  # takes up to 80 tokens
    with pytest.raises(BadInput, match="limited to 48 tokens"):
        attribute(sentiment, ["good " * 12], method="attention-flow")
    assert attribute(sentiment, ["good movie"], method="attention-flow").scores.shape[0] == 1


def test_sentence_encoder_is_explained_by_cosine_similarity():
    from attnviz.attribution.targets.text import mean_pool

    minilm = load_model("minilm", device="cpu")
    with pytest.raises(BadInput, match="--reference"):
        attribute(minilm, ["a cat sat"], method="saliency")
    ctx, (a,) = attribute_many(minilm, ["a cat sat on the mat", "stocks fell"], methods=["integrated-gradients"],
                               reference="a kitten is sitting", steps=16)
    with torch.no_grad():
        enc = minilm.encode(["a cat sat on the mat", "a kitten is sitting"])
        pooled = mean_pool(minilm.model(**enc.batch).last_hidden_state, enc.batch["attention_mask"])
    cos = torch.nn.functional.cosine_similarity(pooled[0], pooled[1], dim=0)
    assert abs(a.probability[0] - float(cos)) < 1e-4
    assert a.probability[0] > a.probability[1]
    assert max(a.extra["completeness_gap"]) < 0.05


def test_a_digit_that_is_a_vocabulary_token_means_that_token():
    from attnviz.attribution.targets.text import _token_id

    decoder = load_model("toy-decoder", device="cpu")
    three = decoder.tokenizer.convert_tokens_to_ids(["3"])[0]
    assert three != 3 and _token_id(decoder, "3") == three
    assert _token_id(decoder, "5") == decoder.tokenizer.convert_tokens_to_ids(["5"])[0]


def test_saliency_and_grad_x_input_share_one_backward_pass(encoder):
    """Both read the same input gradient: run together, the model runs once for them, and each still
    equals its own run alone."""
    calls = []
    hook = encoder.model.register_forward_hook(lambda *_: calls.append(1))
    try:
        _, (sal, gxi) = attribute_many(encoder, TEXTS, methods=["saliency", "grad-x-input"])
    finally:
        hook.remove()
    assert len(calls) == 2  # one to find the target class, one with gradients for both methods
    assert torch.allclose(sal.scores, attribute(encoder, TEXTS, method="saliency").scores)
    assert torch.allclose(gxi.scores, attribute(encoder, TEXTS, method="grad-x-input").scores)


@pytest.mark.parametrize("window", [1, 2])
def test_occlusion_is_the_mean_drop_of_the_windows_covering_each_token(encoder, window):
    """A naive loop over every example and window, one forward each, on the baseline embedding."""
    from attnviz.attribution.context import baseline

    ctx = prepare(encoder, TEXTS, chunk=3)  # "我喜欢" has 3 text tokens: one pass of its own
    calls = []
    score = ctx.score
    ctx.score = lambda embeds, rows=None: calls.append(embeds.shape[:2]) or score(embeds, rows)
    got = METHODS.get("occlusion").fn(ctx, OcclusionOptions(window=window))[0]
    x, x0 = ctx.embeds, baseline(ctx, "pad")
    b, s, _ = x.shape
    with torch.no_grad():
        full = score(x)
        expected = torch.zeros(b, s)
        for e in range(b):
            text = [t for t in range(s) if not ctx.special[e, t]]
            drops = {t: [] for t in text}
            for st in range(s):
                hidden = [t for t in range(st, min(st + window, s)) if t in drops]
                if hidden:
                    variant = x.clone()
                    variant[e, hidden] = x0[e, hidden]
                    fall = float(full[e] - score(variant)[e])
                    for t in hidden:
                        drops[t].append(fall)
            for t, falls in drops.items():
                expected[e, t] = sum(falls) / len(falls)
    assert torch.allclose(got, expected, atol=1e-5)
    # One row per (window, example) that hides a text token, each pass cut to its longest example.
    pairs = sum(bool((~ctx.special[e, st:st + window]).any()) for e in range(b) for st in range(s))
    assert sum(n for n, _ in calls) == b + pairs
    assert min(width for _, width in calls) == int(ctx.mask[1].sum()) < s  # "我喜欢" runs at its own length


def test_deletion_and_insertion_curves_follow_the_ranking_one_step_at_a_time(encoder):
    """Step k hides (deletion) or reveals (insertion) the k best text tokens; probabilities per example alone."""
    from attnviz.attribution.context import baseline
    from attnviz.attribution.faithfulness import curves

    ctx = prepare(encoder, TEXTS, chunk=3)
    scores = torch.randn(ctx.mask.shape, generator=torch.Generator().manual_seed(0))
    dele, ins = curves(ctx, scores)
    x, x0 = ctx.embeds, baseline(ctx, "pad")
    with torch.no_grad():
        for e in range(ctx.size):
            text = [t for t in range(x.shape[1]) if not ctx.special[e, t]]
            order = sorted(text, key=lambda t: -float(scores[e, t]))
            assert len(dele[e]) == len(ins[e]) == len(text) + 1
            for k in range(len(text) + 1):
                gone = torch.zeros(x.shape[1], dtype=torch.bool)
                gone[order[:k]] = True
                rows = torch.tensor([e])
                d = ctx.curve_value(torch.where(gone[:, None], x0[e], x[e])[None], rows)
                i = ctx.curve_value(torch.where(gone[:, None], x[e], x0[e])[None], rows)
                assert abs(dele[e][k] - float(d)) < 1e-5 and abs(ins[e][k] - float(i)) < 1e-5


def test_a_class_index_may_be_given_as_an_int():
    sentiment = load_model("toy-sentiment", device="cpu")
    as_int = attribute(sentiment, "good", method="saliency", target=2)
    assert as_int.target == attribute(sentiment, "good", method="saliency", target="2").target == ["label positive"]


def test_eager_fallback_models_give_the_same_rollout_as_their_captured_attention(tmp_path):
    """BLOOM does not dispatch through the attention interface: attribution reads output_attentions."""
    from conftest import save

    from attnviz.recording import capture

    loaded = load_model(str(save("bloom", tmp_path / "bloom")), device="cpu")
    assert loaded.backend == "eager"
    texts = ["the cat sat on the mat", "a dog"]
    got = attribute(loaded, texts, method="rollout").scores  # (B, S): the next token after the last real one
    maps = capture(loaded, texts)
    rel = rollout(maps.weights, maps.mask)  # (B, S, S)
    last = maps.mask.sum(1) - 1
    expected = rel[torch.arange(2), last] * maps.mask
    assert torch.allclose(got, expected, atol=1e-5)
    grads = attribute(loaded, texts, method="attn-grad").scores
    assert torch.isfinite(grads).all() and (grads[maps.mask == 0] == 0).all()


def test_a_multi_label_text_classifier_reports_its_sigmoid():
    import dataclasses

    loaded = load_model("toy-sentiment", device="cpu")
    multi = dataclasses.replace(loaded, multi_label=True)
    texts = ["not good", "很好"]
    with torch.no_grad():
        logits = loaded.model(**loaded.encode(texts).batch).logits.float()  # (2, 3)
    for model, expected in ((loaded, logits.softmax(-1)), (multi, logits.sigmoid())):
        a = attribute(model, texts, method="saliency")
        assert a.probability == pytest.approx(expected.max(-1).values.tolist(), abs=1e-5)


def test_an_image_model_is_sent_to_cam():
    with pytest.raises(BadInput, match="toy-vit reads images: use `attnviz cam`"):
        attribute(load_model("toy-vit", device="cpu"), ["a circle"], method="saliency")


def test_a_model_that_scales_its_input_embeddings_in_place(tmp_path):
    """CTRL multiplies inputs_embeds by sqrt(d) in place: attnviz's embeddings (a leaf that needs its gradient, or
    the batch's own, reused by every method) must not be what it writes into."""
    import transformers as tf
    from conftest import tokenizer

    torch.manual_seed(0)
    tf.CTRLLMHeadModel(tf.CTRLConfig(n_embd=32, n_layer=2, n_head=4, dff=37, vocab_size=99, n_positions=64,
                                     pad_token_id=0)).save_pretrained(tmp_path)
    tokenizer(token_types=False).save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path), device="cpu")
    ctx, (sal, ig) = attribute_many(loaded, ["the cat sat on the mat"], methods=["saliency", "integrated-gradients"],
                                    steps=32)
    before = loaded.model.get_input_embeddings()(ctx.batch["input_ids"])
    assert torch.equal(ctx.embeds, before.detach())  # not scaled by the model
    assert torch.isfinite(sal.scores).all() and ig.extra["completeness_gap"][0] < 0.01


def test_a_model_that_routes_its_experts_by_token_id_is_refused(tmp_path):
    """DeepSeek V4 reads input_ids inside its layers (hash routing): from embeddings it cannot run."""
    from families import build, discover

    from conftest import tokenizer

    build(discover()["deepseek_v4"]).save_pretrained(tmp_path)
    tokenizer(token_types=False).save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path), device="cpu")
    with pytest.raises(BadInput, match="routes its experts by token id"):
        attribute(loaded, ["the cat sat"], method="saliency")
