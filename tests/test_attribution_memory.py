"""Integrated gradients' memory savings change no number: recomputed layers and passes cut to their rows."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch

from conftest import save
from attnviz.attribution import attribute, prepare
from attnviz.attribution.context import baseline, recomputed_layers
from attnviz.attribution.methods import integrated
from attnviz.attention.sites import attention_sites, layer_path
from attnviz.models import load_model

TEXTS = ["the cat sat on the mat and the dog ran far", "猫", "a big red dog"]


@pytest.fixture(scope="module", params=["toy-encoder", "toy-decoder", "toy-seq2seq", "gpt2", "llama", "t5", "bart"])
def loaded(request, tmp_path_factory):
    if request.param.startswith("toy-"):
        return load_model(request.param, device="cpu")
    folder = save(request.param, tmp_path_factory.mktemp(request.param))
    return load_model(str(folder), device="cpu")


def _first_layer(model):
    return model.get_submodule(layer_path(attention_sites(model)[0].name))


def test_recomputed_layers_give_the_same_gradients_and_really_run_again(loaded, monkeypatch):
    ctx = prepare(loaded, TEXTS, chunk=8)
    x0 = baseline(ctx, "pad")
    calls = []
    inside = attention_sites(loaded.model)[0].module  # called through the layer's own forward
    hook = inside.register_forward_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    try:
        with_recompute = integrated.path_gradients(ctx, ctx.embeds, x0, 6, "gausslegendre")
        runs = len(calls)
        monkeypatch.setattr(integrated, "recomputed_layers", lambda model: nullcontext())
        calls.clear()
        plain = integrated.path_gradients(ctx, ctx.embeds, x0, 6, "gausslegendre")
    finally:
        hook.remove()
    passes = len(calls)  # one forward pass of the first layer per chunk of rows (encoder-decoders: per stack)
    assert passes == -(-len(TEXTS) * 6 // 8)
    assert runs == 2 * passes  # once without autograd, once more in the backward pass
    scale = plain.abs().max()
    assert scale > 0 and (with_recompute - plain).abs().max() <= 1e-5 * scale


def test_layers_get_their_own_forward_back(loaded):
    layer = _first_layer(loaded.model)
    with recomputed_layers(loaded.model):
        assert "forward" in vars(layer)
    assert "forward" not in vars(layer)

    wrapper = layer.forward  # an instance-level forward, as a dispatch hook installs one
    layer.forward = wrapper
    try:
        with pytest.raises(RuntimeError), recomputed_layers(loaded.model):
            assert layer.forward is not wrapper
            raise RuntimeError("inside")
        assert vars(layer)["forward"] is wrapper  # put back, not deleted, even after an error
    finally:
        del layer.forward


def test_a_padded_batch_equals_each_example_alone():
    loaded = load_model("toy-encoder", device="cpu")
    together = attribute(loaded, TEXTS, method="integrated-gradients", steps=16)
    for i, text in enumerate(TEXTS):
        alone = attribute(loaded, [text], method="integrated-gradients", steps=16)
        n = alone.scores.shape[1]
        assert (together.scores[i, n:] == 0).all()
        scale = alone.scores.abs().max()
        assert (together.scores[i, :n] - alone.scores[0]).abs().max() <= 1e-5 * scale


def test_a_pass_over_short_examples_drops_their_padding(monkeypatch):
    loaded = load_model("toy-encoder", device="cpu")
    ctx = prepare(loaded, TEXTS, chunk=4)
    widths = []
    run = ctx.run
    monkeypatch.setattr(ctx, "run", lambda embeds, rows=None, **kw: widths.append(embeds.shape[1]) or run(embeds, rows, **kw))
    integrated.path_gradients(ctx, ctx.embeds, baseline(ctx, "pad"), 4, "gausslegendre")
    lengths = sorted(ctx.lengths().tolist())
    assert widths == lengths  # four steps of one example per pass, shortest first, cut to its length
    assert widths[0] < ctx.embeds.shape[1]
