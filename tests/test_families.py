"""Exactness on the families users bring: captured weights and outputs equal eager attention's.

Tiny seeded models built from each family's configuration class (never downloaded); a padded batch, so that
every family's mask path is used, and padding keys must get no attention at all.
"""

from __future__ import annotations

import pytest
import torch
import transformers as tf

from attnviz.attention.hf import register
from attnviz.errors import BadInput
from attnviz.recording import recording

_C = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, vocab_size=99,
          max_position_embeddings=64, pad_token_id=0)
_GQA = dict(_C, num_key_value_heads=2)
_MOE = dict(num_experts_per_tok=2)
FAMILIES = {
    # A cap of 1 bends these tiny models' scores (under the default of 50 they would pass through unchanged).
    "gemma2 (softcap)": lambda: tf.Gemma2ForCausalLM(tf.Gemma2Config(**_GQA, head_dim=8, sliding_window=4,
                                                                      attn_logit_softcapping=1.0)),
    "gpt-oss (sinks)": lambda: tf.GptOssForCausalLM(tf.GptOssConfig(**_GQA, head_dim=8, num_local_experts=4, **_MOE,
                                                                      sliding_window=4)),
    "gemma3": lambda: tf.Gemma3ForCausalLM(tf.Gemma3TextConfig(**_GQA, head_dim=8, sliding_window=4)),
    "qwen3": lambda: tf.Qwen3ForCausalLM(tf.Qwen3Config(**_GQA, head_dim=8)),
    "qwen3-moe": lambda: tf.Qwen3MoeForCausalLM(tf.Qwen3MoeConfig(**_GQA, head_dim=8, num_experts=4, **_MOE,
                                                                   moe_intermediate_size=16)),
    "mistral (sliding window)": lambda: tf.MistralForCausalLM(tf.MistralConfig(**_GQA, sliding_window=4)),
    "mixtral": lambda: tf.MixtralForCausalLM(tf.MixtralConfig(**_GQA, num_local_experts=4, **_MOE)),
    "phi3": lambda: tf.Phi3ForCausalLM(tf.Phi3Config(**_GQA)),
    "deepseek-v3 (MLA)": lambda: tf.DeepseekV3ForCausalLM(tf.DeepseekV3Config(
        **dict(_C, num_key_value_heads=4), q_lora_rank=16, kv_lora_rank=16, qk_rope_head_dim=4, qk_nope_head_dim=4,
        v_head_dim=6, n_routed_experts=4, **_MOE, moe_intermediate_size=16, first_k_dense_replace=1, n_group=1,
        topk_group=1)),
    "gpt-neox": lambda: tf.GPTNeoXForCausalLM(tf.GPTNeoXConfig(**_C)),
    "olmo": lambda: tf.OlmoForCausalLM(tf.OlmoConfig(**_C)),
    "modernbert": lambda: tf.ModernBertModel(tf.ModernBertConfig(**_C, global_attn_every_n_layers=2,
                                                                 local_attention=4)),
}
IDS = torch.tensor([[5, 6, 7, 8, 9, 10], [0, 0, 11, 12, 13, 14]])  # the second row padded on the left
MASK = (IDS != 0).long()


def _build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = FAMILIES[name]().eval()
    if hasattr(model, "set_experts_implementation"):
        model.set_experts_implementation("eager")  # grouped matmuls refuse these tiny expert widths
    if name.startswith("gemma2"):
        with torch.no_grad():  # scores of order 1 and more, where the cap bends them
            for layer in model.model.layers:
                layer.self_attn.q_proj.weight.mul_(30.0)
    return model


def _stack(rec) -> torch.Tensor:
    """(layer, B, H, Q, K): a decoder-only model's one stack, whatever its modules are named."""
    return rec.stacked("encoder") if rec.layers("encoder") else rec.stacked("decoder")


def _out(result) -> torch.Tensor:
    return result.logits if hasattr(result, "logits") else result.last_hidden_state


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_captured_weights_and_outputs_equal_eager(name):
    model = _build(name)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        eager = model(input_ids=IDS, attention_mask=MASK, output_attentions=True)
    want = torch.stack(eager.attentions)  # (layer, B, H, Q, K)
    model.set_attn_implementation(register())
    with torch.no_grad(), recording(model) as rec:
        out = model(input_ids=IDS, attention_mask=MASK)
    got = _stack(rec)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= 1e-6
    assert (_out(out) - _out(eager)).abs().max().item() <= 1e-5
    assert got[:, 1, :, 2:, :2].abs().max().item() == 0.0  # padding keys get no mass


def test_gpt_oss_weights_are_the_real_tokens_share_beside_the_sink():
    """The sink takes part of every row: the captured rows sum to less than one, by exactly the sink's share."""
    model = _build("gpt-oss (sinks)")
    model.set_attn_implementation(register())
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.sinks.fill_(2.0)
        with recording(model) as rec:
            model(input_ids=IDS[:1])
    rows = _stack(rec).sum(-1)  # (layer, 1, H, Q)
    assert rows.max().item() < 0.99 and rows.min().item() > 0.0


def test_gemma2_softcap_changes_the_weights_and_the_kernel_follows():
    model = _build("gemma2 (softcap)")
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(100.0)  # peaked rows, unless the cap flattens them
            layer.self_attn.attn_logit_softcapping = 0.01  # a cap this low flattens every row towards uniform
    model.set_attn_implementation(register())
    with torch.no_grad(), recording(model) as rec:
        model(input_ids=IDS[:1])
    causal_rows = _stack(rec)[-1, 0, :, -1]  # (H, K): in the full-attention layer the last query sees every key
    assert (causal_rows - 1 / IDS.shape[1]).abs().max().item() < 0.01  # 0.05 and more without the cap


def test_a_keyword_the_kernel_does_not_compute_is_refused_with_exit_2():
    from attnviz.attention.kernel import attention

    module = torch.nn.Module()
    q = torch.randn(1, 2, 3, 4)
    with pytest.raises(BadInput, match="passes alibi_slopes"):
        attention(module, q, q, q, None, alibi_slopes=torch.ones(2))
    out, _ = attention(module, q, q, q, None, position_ids=torch.arange(3), sliding_window=4, use_cache=True)
    assert out.shape == (1, 3, 2, 4)
