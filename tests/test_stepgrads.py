"""Input-gradient methods over every step from one forward pass (attribution/stepgrads.py): the same scores as
one row per step, one forward pass per example (per quadrature node for integrated gradients)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnviz.attribution.forced import forced_batch
from attnviz.attribution.generation import GenerationConfig, attribute_generation
from attnviz.attribution.stepgrads import SHARED, shared_scores
from attnviz.attribution.steprows import gradient_scores
from attnviz.attribution.tokens import method_options
from attnviz.models import load_model
from attnviz.models.generate import encode_answer, encode_prompts, pad_id
from conftest import save


@pytest.fixture(scope="module", params=["llama", "gpt2", "toy-induction"])
def loaded(request, tmp_path_factory):
    name = request.param
    return load_model(name if name.startswith("toy") else str(save(name, tmp_path_factory.mktemp(name))), device="cpu")


def _forced(loaded, spans: bool):
    words = "abcd" if loaded.name == "toy-induction" else None
    prompts = ["abcdab", "bca"] if words else ["the cat sat on", "a dog"]
    answer = encode_answer(loaded, "cdab" if words else "the mat and ran")
    units = [[(1, 3)]] * 2 if spans else [[(t, t) for t in range(len(answer))]] * 2
    return forced_batch(loaded, encode_prompts(loaded, prompts).ids, [answer, answer], units, pad_id(loaded))


@pytest.mark.parametrize("chunk", [32, 3], ids=["one-call", "calls-of-3"])  # steps per backward call (4 steps)
@pytest.mark.parametrize("spans", [False, True], ids=["steps", "span"])
@pytest.mark.parametrize("method", SHARED)
def test_one_forward_pass_gives_the_scores_of_one_row_per_step(loaded, method, spans, chunk):
    forced = _forced(loaded, spans)
    options = method_options([method], steps=8) if method == "integrated-gradients" else {}
    opts = GenerationConfig((method,), options).options[method]
    rows = gradient_scores(loaded, forced, method, opts, pad_id(loaded), 32)
    shared = shared_scores(loaded, forced, method, opts, chunk)
    for want_ex, have_ex in zip(rows, shared):
        assert len(want_ex) == len(have_ex) == len(forced.units[0])
        for (want, facts), (have, found) in zip(want_ex, have_ex):
            assert have.dtype == np.float32 and have.shape == want.shape
            assert np.abs(have - want).max() <= 1e-5 * max(np.abs(want).max(), 1e-6), method
            if method == "integrated-gradients":
                assert found["completeness_gap"] == pytest.approx(facts["completeness_gap"], abs=1e-4)


def _forwards(model) -> list:
    """Rows of each forward pass from input embeddings (the teacher-forced pass of the step scores reads ids)."""
    seen = []

    def hook(module, args, kwargs, out):
        if kwargs.get("inputs_embeds") is not None:
            seen.append(kwargs["inputs_embeds"].shape[0])

    model.register_forward_hook(hook, with_kwargs=True)
    return seen


def test_every_step_of_an_answer_shares_one_forward_pass(tmp_path):
    loaded = load_model(str(save("llama", tmp_path)), device="cpu")
    seen = _forwards(loaded.model)
    r = attribute_generation(loaded, "the cat sat on", methods=["saliency"], answer="the mat and ran far", chunk=2)[0]
    assert len(r.steps) == 5 and seen == [1]  # one pass of one row; backward calls of 2, 2 and 1 steps
    seen.clear()
    attribute_generation(loaded, "the cat sat on", methods=["integrated-gradients"], answer="the mat and ran far",
                         steps=6, chunk=10)
    # F(x) and F(x') in one pass of two rows, then 6 nodes, 2 a pass (10 // 5 steps a backward call)
    assert seen == [2, 2, 2, 2]
