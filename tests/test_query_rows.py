"""A recording that keeps some query rows only (``recording(query_rows=...)``): the rows equal the whole map's and
eager attention's, a layer on SDPA's fused path computes those rows alone, and generate's raw attention reads them."""

from __future__ import annotations

import pytest
import torch
from families import IDS, MASK, build, discover
from test_families import HAND

import attnviz.attention.kernel as kernel
from attnviz.attention.hf import register
from attnviz.attribution.generation import attribute_generation
from attnviz.models import load_model
from attnviz.models.generate import encode_answer, encode_prompts
from attnviz.recording import STACKS, recording

ROWS = (3, 5)  # of 6 positions


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = HAND[name]() if name in HAND else build(discover()[name])
    return model.eval()


@pytest.mark.parametrize("padded", [True, False], ids=["mask", "causal"])  # a padding mask, or the causal cut alone
@pytest.mark.parametrize("name", ["llama", "gpt2", "gemma2", "gpt_oss"])  # fused path (GQA, MHA); soft cap, sinks
def test_the_kept_rows_equal_the_whole_maps_and_eagers(name, padded):
    inputs = {"input_ids": IDS, "attention_mask": MASK} if padded else {"input_ids": IDS[:1]}
    model = _model(name)
    if hasattr(model, "set_experts_implementation"):
        model.set_experts_implementation("eager")
    with torch.no_grad():
        model.set_attn_implementation("eager")
        eager = torch.stack(model(**inputs, output_attentions=True).attentions)
        model.set_attn_implementation(register())
        with recording(model) as whole:
            model(**inputs)
        with recording(model, query_rows=ROWS) as rows:
            model(**inputs)
    got = rows.stacked("encoder")  # (layer, B, H, 2, K)
    assert got.shape[-2] == ROWS[1] - ROWS[0]
    kept = [w for calls in rows.calls.values() for w in calls]
    assert all(w.untyped_storage().nbytes() == w.numel() * w.element_size() for w in kept)  # not views of whole maps
    # later layers read an earlier one's output from SDPA, which rounds unlike the explicit product
    assert (got - whole.stacked("encoder")[..., ROWS[0]:ROWS[1], :]).abs().max() <= 1e-6
    assert (got - eager[..., ROWS[0]:ROWS[1], :]).abs().max() <= 1e-6


def test_a_layer_on_the_fused_path_computes_the_kept_rows_alone(monkeypatch):
    model = _model("llama")
    model.set_attn_implementation(register())
    shapes = []
    real = kernel.F.softmax
    monkeypatch.setattr(kernel.F, "softmax", lambda x, *a, **k: shapes.append(tuple(x.shape)) or real(x, *a, **k))
    with torch.no_grad(), recording(model, query_rows=ROWS):
        model(input_ids=IDS, attention_mask=MASK)
    assert shapes and all(s[-2] == ROWS[1] - ROWS[0] for s in shapes)  # no softmax over all 6 rows


def test_generated_attention_reads_the_answer_rows_as_eager_gives_them():
    loaded = load_model("toy-induction", device="cpu")
    r = attribute_generation(loaded, "abcdab", methods=["attention"], answer="cdab")[0]
    ids = torch.tensor([encode_prompts(loaded, ["abcdab"]).ids[0] + encode_answer(loaded, "cdab")])
    with torch.no_grad():
        with recording(loaded.model) as whole:
            loaded.model(input_ids=ids)
    stack = next(s for s in STACKS if whole.layers(s))
    last = whole.stacked(stack)[-1, 0].mean(0)  # (S, S) the last layer's head mean
    for step, row in zip(r.steps, r.scores["attention"]):
        want = last[step["position"] - 1, : step["position"]]
        assert torch.allclose(torch.from_numpy(row), want, atol=1e-6)


def test_a_padded_batch_reads_each_prompts_rows_as_alone(tmp_path):
    from conftest import save

    loaded = load_model(str(save("llama", tmp_path)), device="cpu")
    prompts = ["the cat sat on the", "a dog", "hello world big red"]
    together = attribute_generation(loaded, prompts, methods=["attention"], answer="mat and ran")
    for prompt, got in zip(prompts, together):
        alone = attribute_generation(loaded, prompt, methods=["attention"], answer="mat and ran")[0]
        assert [s["position"] for s in got.steps] == [s["position"] for s in alone.steps]
        for a, b in zip(got.scores["attention"], alone.scores["attention"]):
            assert abs(a - b).max() <= 1e-6
