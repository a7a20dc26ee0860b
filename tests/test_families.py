"""Exactness on the families users bring: captured weights (and outputs) equal eager attention's, whichever backend
the preflight picked, or a clean refusal with exit 2.

The families come from the installed transformers (``families.discover``: its public auto mappings), each built
tiny and seeded from its own config class; a padded batch exercises every family's mask path. The default run
checks a fixed representative subset: the hand-tuned families below (configs that exercise the feature named)
plus BERT, GPT-2, Llama, T5, BART, ViT, CLIP and Whisper's decoder; the slow run sweeps every family found.
``scripts/families_table.py`` writes the README's table from the same checks.
"""

from __future__ import annotations

import pytest
import torch
import transformers as tf
from families import IDS, MASK, Family, check, discover

from attnviz.attention.hf import register
from attnviz.errors import BadInput
from attnviz.recording import recording

_C = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, vocab_size=99,
          max_position_embeddings=64, pad_token_id=0)
_GQA = dict(_C, num_key_value_heads=2)
_MOE = dict(num_experts_per_tok=2)


def _gemma2() -> torch.nn.Module:
    # A cap of 1 bends these tiny models' scores (under the default of 50 they would pass through unchanged), and
    # queries 30x larger give scores of order 1 and more, where the cap bends them.
    model = tf.Gemma2ForCausalLM(tf.Gemma2Config(**_GQA, head_dim=8, sliding_window=4, attn_logit_softcapping=1.0))
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(30.0)
    return model


HAND = {  # model type -> builder: configs tuned so that the feature named in the README's table is exercised
    "gemma2": _gemma2,
    "gpt_oss": lambda: tf.GptOssForCausalLM(tf.GptOssConfig(**_GQA, head_dim=8, num_local_experts=4, **_MOE,
                                                            sliding_window=4)),
    "gemma3_text": lambda: tf.Gemma3ForCausalLM(tf.Gemma3TextConfig(**_GQA, head_dim=8, sliding_window=4)),
    "qwen3": lambda: tf.Qwen3ForCausalLM(tf.Qwen3Config(**_GQA, head_dim=8)),
    "qwen3_moe": lambda: tf.Qwen3MoeForCausalLM(tf.Qwen3MoeConfig(**_GQA, head_dim=8, num_experts=4, **_MOE,
                                                                  moe_intermediate_size=16)),
    "mistral": lambda: tf.MistralForCausalLM(tf.MistralConfig(**_GQA, sliding_window=4)),
    "mixtral": lambda: tf.MixtralForCausalLM(tf.MixtralConfig(**_GQA, num_local_experts=4, **_MOE)),
    "phi3": lambda: tf.Phi3ForCausalLM(tf.Phi3Config(**_GQA)),
    "deepseek_v3": lambda: tf.DeepseekV3ForCausalLM(tf.DeepseekV3Config(
        **dict(_C, num_key_value_heads=4), q_lora_rank=16, kv_lora_rank=16, qk_rope_head_dim=4, qk_nope_head_dim=4,
        v_head_dim=6, n_routed_experts=4, **_MOE, moe_intermediate_size=16, first_k_dense_replace=1, n_group=1,
        topk_group=1)),
    "gpt_neox": lambda: tf.GPTNeoXForCausalLM(tf.GPTNeoXConfig(**_C)),
    "olmo": lambda: tf.OlmoForCausalLM(tf.OlmoConfig(**_C)),
    "modernbert": lambda: tf.ModernBertModel(tf.ModernBertConfig(**_C, global_attn_every_n_layers=2,
                                                                 local_attention=4)),
}
# Built generically from the installed config classes: the families most people start from.
COMMON = ("bert", "gpt2", "llama", "t5", "bart", "vit", "clip_vision_model", "whisper", "distilbert", "opt")
# Whisper's decoder alone never runs its cross-attention, so the preflight falls back to eager for it.
EXPECTED = {"whisper": "eager"}


def families() -> dict[str, Family]:
    """Every family found, the hand-tuned ones replacing their generic builds."""
    found = discover()
    for name, builder in HAND.items():
        kind = "encoder" if name == "modernbert" else "decoder"
        found[name] = Family(name, kind, found[name].model_class if name in found else "", builder)
    return found


ALL = families()
SUBSET = [*HAND, *COMMON]


def _assert_explained(name: str) -> None:
    outcome = check(ALL[name])
    if outcome.status == "skipped":
        pytest.skip(f"{name}: {outcome.reason}")
    assert outcome.status != "mismatch", f"{name}: {outcome.reason}"
    if outcome.status == "exact":
        assert outcome.error <= 1e-6
    assert outcome.status in ("exact", "eager", "refused")  # refused: BadInput, exit 2, with the reason


@pytest.mark.parametrize("name", SUBSET)
def test_the_representative_families_are_exact(name):
    assert name in ALL, f"transformers no longer maps {name}"
    outcome = check(ALL[name])
    assert outcome.status == EXPECTED.get(name, "exact"), f"{name}: {outcome.status} {outcome.reason}"
    assert outcome.error <= 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(ALL) - set(SUBSET)))
def test_every_family_of_the_installed_transformers_is_exact_eager_or_refused(name):
    _assert_explained(name)


def test_discovery_finds_every_kind_and_skips_with_a_reason():
    kinds = {f.kind for f in ALL.values()}
    assert kinds == {"decoder", "encoder", "encoder-decoder", "vision"}
    assert len(ALL) > 100
    composite = check(ALL["llava"]) if "llava" in ALL else None  # a multimodal config: two towers
    assert composite is None or (composite.status == "skipped" and "composite" in composite.reason)


def test_a_family_that_reuses_its_attention_module_is_refused_with_exit_2():
    """ALBERT shares one layer's weights across layers: its one attention module runs once per layer."""
    outcome = check(ALL["albert"])
    assert outcome.status == "refused" and "ran attention 2 times" in outcome.reason


def test_gpt_oss_weights_are_the_real_tokens_share_beside_the_sink():
    """The sink takes part of every row: the captured rows sum to less than one, by exactly the sink's share."""
    model = HAND["gpt_oss"]().eval()
    model.set_experts_implementation("eager")
    model.set_attn_implementation(register())
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.sinks.fill_(2.0)
        with recording(model) as rec:
            model(input_ids=IDS[:1])
    rows = rec.stacked("encoder").sum(-1)  # (layer, 1, H, Q)
    assert rows.max().item() < 0.99 and rows.min().item() > 0.0


def test_gemma2_softcap_changes_the_weights_and_the_kernel_follows():
    torch.manual_seed(0)
    model = _gemma2().eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(100.0)  # peaked rows, unless the cap flattens them
            layer.self_attn.attn_logit_softcapping = 0.01  # a cap this low flattens every row towards uniform
    model.set_attn_implementation(register())
    with torch.no_grad(), recording(model) as rec:
        model(input_ids=IDS[:1], attention_mask=MASK[:1])
    causal_rows = rec.stacked("encoder")[-1, 0, :, -1]  # (H, K): in the full-attention layer the last query sees all
    assert (causal_rows - 1 / IDS.shape[1]).abs().max().item() < 0.01  # 0.05 and more without the cap


def test_a_keyword_the_kernel_does_not_compute_is_refused_with_exit_2():
    from attnviz.attention.kernel import attention

    module = torch.nn.Module()
    q = torch.randn(1, 2, 3, 4)
    with pytest.raises(BadInput, match="passes alibi_slopes"):
        attention(module, q, q, q, None, alibi_slopes=torch.ones(2))
    out, _ = attention(module, q, q, q, None, position_ids=torch.arange(3), sliding_window=4, use_cache=True)
    assert out.shape == (1, 3, 2, 4)


def test_the_readme_table_is_written_from_the_checks(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "families_table.py"
    spec = importlib.util.spec_from_file_location("families_table", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    text = script.table([check(ALL["bert"]), check(ALL["albert"])])
    assert "| kernel, equal to eager | encoder | `bert` |" in text
    assert "| refused (exit 2) | encoder | `albert` |" in text and "| `albert` | encoder layer 0 ran" in text
