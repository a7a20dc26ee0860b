"""The toy Transformers and the character tokenizer: shapes, mask contracts, padding and causality."""

from __future__ import annotations

import pytest
import torch

from attnviz.attention.kernel import MASKS, SCORES, SINK
from attnviz.errors import BadInput
from attnviz.models.toys.chars import CharTokenizer
from attnviz.models.toys.toy import CrossAttention, SelfAttention, ToyConfig, ToyOutput, build_toy

PATTERNS = ["global", "causal", "local", "strided", "axial"]
TEXT_KINDS = ["encoder", "decoder", "encoder-decoder"]


def tiny(kind="encoder", seed=0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    base = dict(kind=kind, vocab_size=20, d_model=16, n_layers=2, n_heads=2, max_len=32, window=1, stride=3)
    if kind == "vision":
        base.update(n_classes=3, image_size=8, patch_size=2, channels=3)
    return build_toy(ToyConfig(**{**base, **overrides})).eval()


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([[2, 7, 8, 9, 10, 11, 12, 3], [2, 13, 14, 15, 3, 0, 0, 0]])  # (B, T)
    return ids, (ids != 0).long()


def attention_modules(model) -> list[tuple[str, torch.nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if "Attention" in type(m).__name__]


def record(model, **inputs) -> tuple[ToyOutput, dict[str, torch.Tensor]]:
    """Forward with a sink on every attention module; returns name -> weights (B, H, Q, K)."""
    store: dict[str, torch.Tensor] = {}
    modules = attention_modules(model)
    for name, module in modules:
        setattr(module, SINK, lambda w, name=name: store.__setitem__(name, w))
    try:
        with torch.no_grad():
            out = model(**inputs)
    finally:
        for _, module in modules:
            delattr(module, SINK)
    return out, store


def expected(pattern, t, causal=False, grid=3) -> torch.Tensor:
    allowed = MASKS.get(pattern)(t, t, "cpu", window=1, stride=3, grid=grid, prefix=1)  # (Q, K)
    return allowed & MASKS.get("causal")(t, t, "cpu") if causal else allowed


def check_weights(weights, allowed, keep, query_keep=None) -> None:
    """Rows sum to 1; real queries give nothing to keys the pattern (Q, K) or padding (B, K) forbids.

    Padding queries may attend to their own key (so that no row is empty); they are not checked.
    """
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5, rtol=0)
    forbidden = ~allowed[None, None] | ~keep.bool()[:, None, None, :]  # (B, 1, Q, K)
    real_rows = (keep if query_keep is None else query_keep).bool()[:, None, :, None]  # (B, 1, Q, 1)
    assert weights.masked_select(forbidden & real_rows).abs().max() == 0


@pytest.mark.parametrize("kind", [*TEXT_KINDS, "vision"])
def test_each_kind_runs_on_a_padded_batch(kind):
    model = tiny(kind)
    if kind == "vision":
        out = model(pixel_values=torch.randn(2, 3, 8, 8))
        assert out.logits.shape == (2, 3) and out.last_hidden_state.shape == (2, 17, 16)
        return
    ids, mask = padded_batch()
    out = model(input_ids=ids, attention_mask=mask)
    assert out.logits.shape == (2, 8, 20) and torch.isfinite(out.logits).all()
    assert (out.encoder_last_hidden_state is not None) == (kind == "encoder-decoder")


def test_attention_modules_are_leaves_named_by_layer():
    model = tiny("encoder-decoder")
    names = [n for n, _ in attention_modules(model)]
    assert names == [f"encoder.layers.{i}.attn" for i in range(2)] + [
        f"decoder.layers.{i}.{part}" for i in range(2) for part in ("self_attn", "cross_attn")
    ]
    for name, module in attention_modules(model):
        assert not any("Attention" in type(m).__name__ for m in module.modules() if m is not module)
        assert module.layer_idx == int(name.split(".")[2]) and module.num_key_value_groups == 1
        stack = "cross" if isinstance(module, CrossAttention) else name.split(".")[0]
        assert module.attnviz_stack == stack and module.is_causal == (stack == "decoder")
        assert isinstance(module, (SelfAttention, CrossAttention))


@pytest.mark.parametrize("score", SCORES.names())
@pytest.mark.parametrize("pattern", PATTERNS)
def test_encoder_weights_follow_pattern_and_padding(score, pattern):
    model = tiny("encoder", score=score, mask=pattern)
    ids, mask = padded_batch()
    _, weights = record(model, input_ids=ids, attention_mask=mask)
    assert len(weights) == 2
    for w in weights.values():
        check_weights(w, expected(pattern, 8), mask)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_decoder_self_attention_is_causal_and_the_pattern(pattern):
    model = tiny("encoder-decoder", score="cosine", mask=pattern)
    ids, mask = padded_batch()
    dec = torch.tensor([[4, 7, 8, 9], [4, 10, 0, 0]])
    _, weights = record(model, input_ids=ids, attention_mask=mask, decoder_input_ids=dec,
                        decoder_attention_mask=(dec != 0).long())
    assert len(weights) == 6  # two layers each of encoder self-, decoder self- and cross-attention
    for name, w in weights.items():
        if name.endswith("self_attn"):
            check_weights(w, expected(pattern, 4, causal=True), (dec != 0).long())
        elif name.endswith("cross_attn"):
            assert w.shape == (2, 2, 4, 8)
            check_weights(w, torch.ones(4, 8, dtype=torch.bool), mask, (dec != 0).long())


def test_vision_axial_mask_uses_the_patch_grid():
    model = tiny("vision", mask="axial", score="additive")
    _, weights = record(model, pixel_values=torch.randn(2, 3, 8, 8))
    assert len(weights) == 2
    for w in weights.values():
        check_weights(w, expected("axial", 17, grid=4), torch.ones(2, 17))


@pytest.mark.parametrize("pattern", PATTERNS)
def test_causal_decoder_ignores_later_tokens(pattern):
    model = tiny("decoder", mask=pattern, score="dot")
    ids = torch.tensor([[4, 7, 8, 9, 10, 11]])
    changed = ids.clone()
    changed[0, 4] = 15
    a, b = model(input_ids=ids).logits, model(input_ids=changed).logits
    torch.testing.assert_close(a[:, :4], b[:, :4], atol=0, rtol=0)
    assert not torch.allclose(a[:, 4:], b[:, 4:])


@pytest.mark.parametrize("kind", TEXT_KINDS)
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("score", ["scaled-dot", "additive"])  # the fused path and the explicit one
def test_padding_does_not_change_an_example(kind, pattern, score):
    model = tiny(kind, mask=pattern, score=score)
    ids, mask = padded_batch()
    batch = model(input_ids=ids, attention_mask=mask).logits
    alone = model(input_ids=ids[1:, :5]).logits
    torch.testing.assert_close(batch[1:, :5], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_classifier_heads_ignore_padding(kind):
    model = tiny(kind, n_classes=4)
    ids, mask = padded_batch()
    batch = model(input_ids=ids, attention_mask=mask).logits
    assert batch.shape == (2, 4)
    torch.testing.assert_close(batch[1:], model(input_ids=ids[1:, :5]).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", TEXT_KINDS)
@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_inputs_embeds_equal_input_ids(kind, positions):
    model = tiny(kind, positions=positions)
    ids, mask = padded_batch()
    from_ids = model(input_ids=ids, attention_mask=mask, decoder_input_ids=ids[:, :3])
    embeds = model.get_input_embeddings()(ids)
    extra = {"decoder_inputs_embeds": model.get_input_embeddings()(ids[:, :3])} if kind == "encoder-decoder" else {}
    from_embeds = model(inputs_embeds=embeds, attention_mask=mask, **extra)
    torch.testing.assert_close(from_ids.logits, from_embeds.logits, atol=1e-6, rtol=0)


def test_sinusoidal_positions_are_fixed_and_learned_ones_train():
    sin, learned = tiny(positions="sinusoidal"), tiny(positions="learned")
    assert not any("pos" in n for n, _ in sin.named_parameters())
    assert "pos_table" not in sin.state_dict()
    assert learned.pos.weight.requires_grad
    ids = torch.tensor([[2, 7, 7, 3]])
    assert not torch.allclose(sin(input_ids=ids).logits, learned(input_ids=ids).logits)


def test_same_seed_same_weights_and_train_mode_uses_dropout():
    a, b = tiny(seed=3, dropout=0.5), tiny(seed=3, dropout=0.5)
    ids = torch.tensor([[2, 7, 8, 3]])
    torch.testing.assert_close(a(input_ids=ids).logits, b(input_ids=ids).logits, atol=0, rtol=0)
    a.train()
    torch.manual_seed(0)
    assert not torch.allclose(a(input_ids=ids).logits, b(input_ids=ids).logits)


def test_config_round_trips_and_rejects_nonsense():
    cfg = ToyConfig(kind="vision", n_classes=2, mask="axial", positions="sinusoidal")
    assert ToyConfig.from_dict(cfg.to_dict()) == cfg
    for bad in (dict(kind="rnn"), dict(score="nope"), dict(mask="nope"), dict(n_heads=3),
                dict(kind="vision"), dict(kind="encoder-decoder", n_classes=2)):
        with pytest.raises(BadInput):
            ToyConfig(**bad)
    with pytest.raises(BadInput):
        ToyConfig.from_dict({"kind": "encoder", "colour": "red"})
    with pytest.raises(BadInput):
        tiny()(input_ids=torch.zeros(1, 40, dtype=torch.long))


def test_tokenizer_round_trips_chinese_and_english():
    texts = ["不好看", "Not bad at all."]
    tok = CharTokenizer.from_texts(texts)
    enc = tok(texts)
    assert enc["input_ids"].dtype == torch.long and enc["input_ids"].shape == (2, 17)
    assert enc["attention_mask"][0].tolist() == [1] * 5 + [0] * 12
    assert tok.convert_ids_to_tokens(enc["input_ids"][0][:5]) == ["[CLS]", "不", "好", "看", "[SEP]"]
    assert tok.convert_ids_to_tokens(enc["input_ids"][1])[4] == "▁"
    for text, row in zip(texts, enc["input_ids"]):
        assert tok.decode(row, skip_special_tokens=True) == text
    again = CharTokenizer.from_dict(tok.to_dict())
    assert again(texts)["input_ids"].equal(enc["input_ids"]) and len(again) == tok.vocab_size == 7 + 12


def test_tokenizer_specials_styles_unknowns_and_truncation():
    tok = CharTokenizer(list("abc"))
    assert [tok.convert_tokens_to_ids(t) for t in tok.all_special_tokens] == list(range(7))
    assert tok.pad_token == "[PAD]" and tok.pad_token_id == 0
    assert tok(["abz"])["input_ids"].tolist() == [[2, 7, 8, 1, 3]]
    tok.style = "bos"
    assert tok(["ab"])["input_ids"].tolist() == [[4, 7, 8]]
    tok.style = "none"
    assert tok(["ab"], add_special_tokens=True)["input_ids"].tolist() == [[7, 8]]
    tok.style = "cls"
    assert tok(["abcabc"], max_length=4)["input_ids"].tolist() == [[2, 7, 8, 3]]
    ragged = tok(["abcabc", "a"], padding=False, return_tensors=None)["input_ids"]
    assert ragged == [[2, 7, 8, 9, 7, 8, 9, 3], [2, 7, 3]]
    assert tok(["a"], padding="max_length", max_length=5)["attention_mask"].tolist() == [[1, 1, 1, 0, 0]]


def test_tokenizer_feeds_a_toy():
    tok = CharTokenizer.from_texts(["这部电影不好看", "great film"])
    model = tiny("encoder", vocab_size=len(tok), n_classes=2)
    out = model(**tok(["这部电影不好看", "great"]))
    assert out.logits.shape == (2, 2)


def test_training_leaves_the_callers_random_stream_and_threads_as_they_were():
    from attnviz.models.toys.train import deterministic, train

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    train("toy-sentiment", seed=0, steps=1, heldout=4)
    with pytest.raises(RuntimeError):  # and after an error
        with deterministic(5):
            raise RuntimeError("stop")
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
