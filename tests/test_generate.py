"""attribute_generation: the toy's copy explained by its source, IG equal to captum's, padded batches equal
prompts alone, the long-prompt path equal to full maps, step scores, spans and decoding."""

from __future__ import annotations

import math

import pytest
import torch

from attnviz.attribution.generation import GENERATION_METHODS, attribute_generation
from attnviz.errors import BadInput
from attnviz.models import load_model
from attnviz.models.generate import Decoding, encode_prompts, generate
from attnviz.models.toys.data import generate as toy_examples
from conftest import save

torch.set_num_threads(1)  # tiny models: threads only add hand-offs on a shared machine


@pytest.fixture(scope="module")
def induction():
    return load_model("toy-induction", device="cpu")


def test_the_toy_continues_the_copy_and_attn_grad_points_at_the_copied_source(induction):
    examples = toy_examples("toy-induction", 16, seed=5)
    prompts = [e["text"][: e["segment"]] + e["text"][:2] for e in examples]  # a fresh segment, two symbols of its copy
    results = attribute_generation(induction, prompts, methods=["attn-grad"], max_new_tokens=4)
    hits = total = 0
    for e, r in zip(examples, results):
        n = e["segment"]
        assert "".join(r.answer) == e["text"][2: 2 + len(r.answer)]  # the copy continues
        for step, row in zip(r.steps, r.scores["attn-grad"]):
            assert len(row) == step["position"]
            hits += max(range(len(row)), key=row.__getitem__) == step["position"] - n  # the truth: n tokens back
            total += 1
    assert total == 64 and hits / total >= 0.9


def test_integrated_gradients_of_one_step_equals_captums(induction):
    from captum.attr import IntegratedGradients

    prompt, answer = "abc猫dabc", "猫"
    got = attribute_generation(induction, prompt, methods=["integrated-gradients"], answer=answer, steps=24)[0]
    ids = torch.tensor([encode_prompts(induction, [prompt]).ids[0]])
    token = induction.tokenizer.convert_tokens_to_ids(answer)
    embed = induction.model.get_input_embeddings()
    x = embed(ids).detach()
    pad = embed(torch.tensor([induction.tokenizer.pad_token_id]))[0].detach()
    x0 = torch.where((ids < 7)[..., None], x, pad)  # special tokens ([BOS]) stay, text becomes [PAD]

    def logit(e):
        return induction.model(inputs_embeds=e).logits[:, -1, token]

    want = IntegratedGradients(logit).attribute(x, baselines=x0, n_steps=24, method="gausslegendre").sum(-1)[0]
    have = torch.tensor(got.scores["integrated-gradients"][0])
    assert (have - want).abs().max() <= 1e-5 * want.abs().max()
    assert got.steps[0]["completeness_gap"] < 0.05  # the same report as `attribute`


@pytest.mark.parametrize("model", ["toy-induction", "llama"])
def test_a_padded_batch_equals_each_prompt_alone(model, tmp_path):
    loaded = load_model("toy-induction" if model == "toy-induction" else str(save(model, tmp_path)), device="cpu")
    prompts = ["abc猫defab", "xyzxy"] if model == "toy-induction" else ["the cat sat on the mat", "hello world"]
    methods = ["attention", "rollout", "attn-grad", "saliency"]
    batch = attribute_generation(loaded, prompts, methods=methods, max_new_tokens=4)
    for prompt, together in zip(prompts, batch):
        alone = attribute_generation(loaded, prompt, methods=methods, max_new_tokens=4)[0]
        assert together.tokens == alone.tokens and len(together.steps) == 4
        for a, b in zip(together.steps, alone.steps):
            assert a["position"] == b["position"] and math.isclose(a["probability"], b["probability"], abs_tol=1e-6)
        for m in methods:
            for ra, rb in zip(together.scores[m], alone.scores[m]):
                assert len(ra) == len(rb) and max(abs(x - y) for x, y in zip(ra, rb)) <= 1e-5


def test_every_method_gives_one_score_per_earlier_position_and_chinese_works(induction):
    r = attribute_generation(induction, "猫狗鱼鸟山猫狗", methods=GENERATION_METHODS, max_new_tokens=3, steps=4)[0]
    assert "".join(r.answer) == "鱼鸟山" and r.tokens[: r.prompt_length] == ["[BOS]", *"猫狗鱼鸟山猫狗"]
    assert [s["position"] for s in r.steps] == [8, 9, 10]
    for m in GENERATION_METHODS:
        assert [len(row) for row in r.scores[m]] == [8, 9, 10], m
        assert all(math.isfinite(v) for row in r.scores[m] for v in row), m


def test_long_prompt_statistics_path_gives_the_attention_of_full_maps(induction, monkeypatch):
    monkeypatch.setattr("attnviz.recording.sinks.BLOCK_BYTES", 1)  # one query per block
    prompts = ["abcdefghijklmnabcd", "猫狗鱼abc猫狗"]
    full = attribute_generation(induction, prompts, methods=["attention"], max_new_tokens=5, keep="full")
    stats = attribute_generation(induction, prompts, methods=["attention"], max_new_tokens=5, keep="stats")
    for f, s in zip(full, stats):
        for ra, rb in zip(f.scores["attention"], s.scores["attention"]):
            assert max(abs(x - y) for x, y in zip(ra, rb)) <= 1e-6
    with pytest.raises(BadInput, match="rollout"):
        attribute_generation(induction, prompts, methods=["rollout"], max_new_tokens=2, keep="stats")


def test_auto_keeps_small_maps_without_asking_and_large_ones_against_the_free_memory(induction, monkeypatch):
    from attnviz.attribution import forced as F
    from attnviz.models.generate import pad_id

    prompts = encode_prompts(induction, ["abcdefgh"])
    batch = F.forced_batch(induction, prompts.ids, [[5, 6, 7]], [[(0, 0), (1, 1), (2, 2)]], pad_id(induction))

    def no_reading():
        raise AssertionError("the free memory was read for maps of a few kilobytes")

    monkeypatch.setattr(F, "default_budget", no_reading)
    assert F.keep_for(induction, "auto", batch, induction.num_layers) == "full"
    monkeypatch.setattr(F, "SMALL", 0)  # as if the maps were large: now the free memory decides
    asked = []
    monkeypatch.setattr(F, "default_budget", lambda: asked.append(1) or 2**40)
    assert F.keep_for(induction, "auto", batch, induction.num_layers) == "full" and asked
    monkeypatch.setattr(F, "default_budget", lambda: 1)
    with pytest.raises(BadInput, match="needs about"):
        F.keep_for(induction, "auto", batch, induction.num_layers)


def test_reading_a_forward_signature_keeps_no_model_alive():
    """A forward set on the instance (accelerate's hooks put one there) is not cached: that would hold the model."""
    import functools
    import gc
    import weakref

    from attnviz.attribution.forced import takes

    model = torch.nn.Linear(2, 2)
    model.forward = functools.partial(type(model).forward, model)  # as accelerate's add_hook_to_module does
    assert takes(model, "input") and not takes(model, "use_cache")
    gone = weakref.ref(model)
    del model
    gc.collect()
    assert gone() is None


def test_score_rows_are_float32_arrays_and_the_file_lists_of_floats(induction):
    import json

    import numpy as np

    from attnviz.attribution.generation import _rows

    r = attribute_generation(induction, "abcdab", methods=["attention", "saliency"], answer="cd")[0]
    doc = r.to_json()
    for m in ("attention", "saliency"):
        rows = r.scores[m]
        assert all(isinstance(row, np.ndarray) and row.dtype == np.float32 and row.ndim == 1 for row in rows), m
        assert [len(row) for row in rows] == [s["position"] for s in r.steps], m
        assert doc["scores"][m] == [row.tolist() for row in rows] and doc["scores"][m][0][0] == float(rows[0][0]), m
        assert all(type(v) is float for row in doc["scores"][m] for v in row), m
    json.dumps(doc)  # nothing but plain JSON values
    mixed = _rows([torch.tensor([0.5], dtype=torch.float64), [0.25, 0.75], np.array([1.0], dtype=np.float32)])
    assert [row.dtype for row in mixed] == [np.float32] * 3
    assert [row.tolist() for row in mixed] == [[0.5], [0.25, 0.75], [1.0]]


def test_step_scores_are_the_models_own_distribution(induction):
    r = attribute_generation(induction, "abcdab", methods=["attention"], answer="cd", contrast="cx")[0]
    ids = torch.tensor([encode_prompts(induction, ["abcdabcd"]).ids[0]])
    with torch.no_grad():
        logp = induction.model(input_ids=ids).logits[0].log_softmax(-1)  # (S, V)
    for step in r.steps:
        row, tok = logp[step["position"] - 1], ids[0, step["position"]]
        assert math.isclose(step["probability"], row[tok].exp().item(), rel_tol=1e-5)
        assert math.isclose(step["entropy"], -(row.exp() * row).sum().item(), rel_tol=1e-4, abs_tol=1e-6)
    assert r.steps[0]["contrast"] == pytest.approx(0.0, abs=1e-6)  # the same first token "c"
    assert r.steps[1]["contrast"] > 0.5  # "d" continues the copy, "x" does not


def test_a_span_is_one_target_with_its_joint_probability(induction):
    each = attribute_generation(induction, "abcdeab", methods=["grad-x-input"], answer="cde")[0]
    span = attribute_generation(induction, "abcdeab", methods=["grad-x-input"], answer="cde", target_span=(1, 2))[0]
    (step,) = span.steps
    assert step["span"] == [1, 2] and step["token"] == "de" and step["position"] == each.steps[2]["position"]
    assert step["probability"] == pytest.approx(each.steps[1]["probability"] * each.steps[2]["probability"], rel=1e-5)
    assert len(span.scores["grad-x-input"]) == 1 and len(span.scores["grad-x-input"][0]) == step["position"]
    with pytest.raises(BadInput, match="outside the answer"):
        attribute_generation(induction, "abcdeab", methods=["attention"], answer="cde", target_span=(2, 3))


def test_a_span_after_the_first_answer_token_on_a_model_that_keeps_few_logits(tmp_path):
    """Llama takes logits_to_keep: the step scores of every answer token need the logits from the prompt's end,
    whatever span is explained."""
    loaded = load_model(str(save("llama", tmp_path)), device="cpu")
    each = attribute_generation(loaded, "the cat sat on", methods=["attention", "saliency"], answer="the mat and")[0]
    span = attribute_generation(loaded, "the cat sat on", methods=["attention", "saliency"], answer="the mat and",
                                target_span=(1, 2))[0]
    (step,) = span.steps
    assert step["probability"] == pytest.approx(each.steps[1]["probability"] * each.steps[2]["probability"], rel=1e-5)
    assert [len(span.scores[m][0]) for m in ("attention", "saliency")] == [step["position"]] * 2


def test_sampling_is_seeded_and_leaves_the_callers_random_stream(induction):
    prompts = encode_prompts(induction, ["abcdefab", "猫狗鱼鸟猫"])
    state = torch.random.get_rng_state()
    hot = Decoding(max_new_tokens=6, sample=True, seed=3, temperature=5.0)
    first, again = generate(induction, prompts, hot), generate(induction, prompts, hot)
    assert first == again and torch.equal(state, torch.random.get_rng_state())
    greedy = generate(induction, prompts, Decoding(max_new_tokens=6))
    assert first != greedy  # a hot temperature leaves the copy somewhere


@pytest.mark.parametrize("given,match", [
    (dict(max_new_tokens=0), "max-new-tokens"), (dict(contrast="\u200b"), "--contrast"),
    (dict(methods=["attention-flow"]), "does not explain generated tokens"), (dict(top_p=0.0), "top-p"),
])
def test_bad_input_is_refused_naming_what_fits(given, match, tmp_path):
    loaded = load_model(str(save("llama", tmp_path)), device="cpu")
    with pytest.raises(BadInput, match=match):
        attribute_generation(loaded, "the cat", **{"methods": ["attention"], **given})


def test_an_encoder_model_is_refused():
    with pytest.raises(BadInput, match="causal language model"):
        attribute_generation(load_model("toy-encoder", device="cpu"), "the cat", methods=["attention"])
