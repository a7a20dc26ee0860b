"""The families of the installed transformers, found from its public auto mappings and built tiny from their own
configuration classes, and the one check each must pass: captured weights equal eager attention's, whichever
backend the preflight picked, or a clean refusal (exit 2). ``tests/test_families.py`` runs it;
``scripts/families_table.py`` turns its results into the README's table of supported families.

A config is shrunk generically: every size its constructor takes under a known name becomes small (32 wide, 2
layers, 4 heads, 99 words, 64 positions); a family that still does not build, is too big, or whose own eager
forward fails at that size is skipped with the reason recorded.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import torch
import transformers as tf
from transformers.models.auto import configuration_auto, modeling_auto

from attnviz.attention.hf import preflight, register
from attnviz.errors import AttnvizError
from attnviz.recording import recording

KINDS = (  # first match wins: BART is in the causal-LM mapping too, BERT has a causal head as well
    ("encoder-decoder", modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES),
    ("encoder", modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES),
    ("decoder", modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES),
    ("vision", modeling_auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES),
)
SMALL = {  # constructor argument -> tiny value, set where the default is a number
    32: ("hidden_size", "d_model", "n_embd", "n_embed", "dim", "embed_dim", "d_embed", "word_embed_proj_dim",
         "image_size"),
    2: ("num_hidden_layers", "num_layers", "n_layer", "n_layers", "encoder_layers", "decoder_layers",
        "num_decoder_layers", "num_encoder_layers", "num_key_value_heads", "num_experts_per_tok",
        "first_k_dense_replace", "max_window_layers"),
    4: ("num_attention_heads", "n_head", "n_heads", "num_heads", "encoder_attention_heads", "decoder_attention_heads",
        "num_experts", "num_local_experts", "n_routed_experts", "qk_rope_head_dim", "qk_nope_head_dim",
        "sliding_window", "rotary_dim"),
    8: ("head_dim", "d_kv", "kv_channels", "v_head_dim", "patch_size"),
    16: ("q_lora_rank", "kv_lora_rank", "moe_intermediate_size", "shared_expert_intermediate_size"),
    64: ("intermediate_size", "ffn_dim", "d_ff", "encoder_ffn_dim", "decoder_ffn_dim", "hidden_dim", "n_inner",
         "max_position_embeddings", "n_positions", "n_ctx", "max_seq_len"),
    99: ("vocab_size",),
    1: ("n_group", "topk_group"),
}
TOKENS = {"pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3, "decoder_start_token_id": 2, "sep_token_id": 3,
          "cls_token_id": 2, "mask_token_id": 4}
MAX_PARAMS = 2_000_000
TOLERANCE = 1e-6  # float32, as the issue asks
IDS = torch.tensor([[5, 6, 7, 8, 9, 10], [0, 0, 11, 12, 13, 14]])  # the second row padded on the left
MASK = (IDS != 0).long()
DECODER_IDS = torch.tensor([[2, 5, 6, 7], [2, 8, 9, 0]])


@dataclass(frozen=True)
class Family:
    name: str  # the model type, e.g. "llama"
    kind: str  # decoder | encoder | encoder-decoder | vision
    model_class: str  # e.g. "LlamaForCausalLM"
    build: Callable[[], torch.nn.Module] | None = None  # a hand-tuned builder; None: shrink the config generically


@dataclass(frozen=True)
class Outcome:
    """``status``: exact (the kernel's weights equal eager's), eager (the preflight fell back; eager's own
    weights), refused (exit 2, ``reason`` says why), skipped (not buildable tiny, ``reason`` says why) or
    mismatch (a failure: the kernel's weights differ from eager's)."""

    family: Family
    status: str
    reason: str = ""
    error: float = 0.0  # largest |kernel - eager| over every captured weight


def discover() -> dict[str, Family]:
    """model type -> Family, for every decoder, encoder, encoder-decoder and image model the installed
    transformers maps (a vision tower such as clip_vision_model counts as an image model)."""
    found = {}
    for model_type in configuration_auto.CONFIG_MAPPING_NAMES:
        for kind, mapping in KINDS:
            if model_type in mapping:
                found[model_type] = Family(model_type, kind, _first(mapping[model_type]))
                break
        else:
            if model_type.endswith("_vision_model") and model_type in modeling_auto.MODEL_MAPPING_NAMES:
                found[model_type] = Family(model_type, "vision", _first(modeling_auto.MODEL_MAPPING_NAMES[model_type]))
    return found


def _first(value):
    return value[0] if isinstance(value, (list, tuple)) else value


def tiny_config(model_type: str):
    """The family's config with every known size made small; composite (multimodal) configs are refused."""
    cls = configuration_auto.CONFIG_MAPPING[model_type]
    if getattr(cls, "sub_configs", None):
        raise Skip("a composite config (several towers); its text or vision family is listed on its own")
    params = inspect.signature(cls.__init__).parameters
    kwargs = {}
    for value, names in SMALL.items():
        for name in names:
            default = params[name].default if name in params else None
            if isinstance(default, int) and not isinstance(default, bool):
                kwargs[name] = value
    for name, value in TOKENS.items():
        if name in params:
            kwargs[name] = value
    if "layer_types" in params:
        kwargs["layer_types"] = None  # rebuilt for 2 layers
    return cls(**kwargs)


class Skip(Exception):
    """The family cannot be built tiny generically; the message says why."""


def build(family: Family, seed: int = 0) -> torch.nn.Module:
    """The family's model, seeded, in eval mode, with eager attention (and eager experts)."""
    if family.build is not None:
        torch.manual_seed(seed)
        model = family.build()
    else:
        try:
            config = tiny_config(family.name)
            with torch.device("meta"):
                params = sum(p.numel() for p in getattr(tf, family.model_class)(config).parameters())
        except Skip:
            raise
        except Exception as err:
            raise Skip(f"no tiny config: {type(err).__name__}: {_short(err)}") from None
        if params > MAX_PARAMS:
            raise Skip(f"{params:,} parameters even when shrunk")
        torch.manual_seed(seed)
        model = getattr(tf, family.model_class)(config)
    if hasattr(model, "set_experts_implementation"):
        model.set_experts_implementation("eager")  # grouped matmuls refuse these tiny expert widths
    return model.eval()


def inputs(family: Family, model: torch.nn.Module) -> dict:
    """A padded batch of two (text) or two seeded images."""
    if family.kind == "vision":
        cfg = model.config
        side, channels = getattr(cfg, "image_size", 32), getattr(cfg, "num_channels", 3)
        side = side[0] if isinstance(side, (list, tuple)) else side
        return {"pixel_values": torch.randn(2, channels, side, side, generator=torch.Generator().manual_seed(0))}
    batch = {"input_ids": IDS, "attention_mask": MASK}
    if family.kind == "encoder-decoder":
        batch.update(decoder_input_ids=DECODER_IDS, decoder_attention_mask=(DECODER_IDS != 0).long())
    return batch


def eager_run(model, batch) -> tuple[dict[str, torch.Tensor], object]:
    """(stack -> (layer, B, H, Q, K) from eager attention's output_attentions, the model's output)."""
    model.set_attn_implementation("eager")
    with torch.no_grad():
        out = model(**batch, output_attentions=True)
    found = {"encoder": getattr(out, "encoder_attentions", None) or getattr(out, "attentions", None),
             "decoder": getattr(out, "decoder_attentions", None), "cross": getattr(out, "cross_attentions", None)}
    return {k: torch.stack(v) for k, v in found.items() if v and all(a is not None for a in v)}, out


def check(family: Family) -> Outcome:
    """Build the family tiny and compare what attnviz captures with eager attention's weights."""
    try:
        model = build(family)
        batch = inputs(family, model)
        want, reference = eager_run(model, batch)
    except Skip as err:
        return Outcome(family, "skipped", str(err))
    except Exception as err:  # the family's own code at this size, not attnviz
        return Outcome(family, "skipped", f"eager run failed when tiny: {type(err).__name__}: {_short(err)}")
    if not want:
        return Outcome(family, "skipped", "returns no attention weights (output_attentions)")
    try:
        model.set_attn_implementation(register())
        backend = preflight(model, lambda: model(**batch))
        if backend == "eager":
            return Outcome(family, "eager", "does not call the attention interface: captured with eager attention")
        with torch.no_grad(), recording(model) as rec:
            out = model(**batch)
        got = {s: rec.stacked(s) for s in ("encoder", "decoder", "cross")}
    except AttnvizError as err:
        if err.exit_code != 2:
            raise
        return Outcome(family, "refused", _short(err))
    if family.kind != "encoder-decoder":  # one stack, whatever its modules are named (OPT's are model.decoder...)
        got = {"encoder": got["encoder"] if got["encoder"] is not None else got["decoder"]}
    return _compared(family, got, want, _output(out) - _output(reference))


def _compared(family: Family, got: dict, want: dict, output_gap: torch.Tensor) -> Outcome:
    """exact when every stack's weights equal eager's; a family whose eager weights leave out its attention sinks
    (rows renormalised over the real keys) is exact if ours, renormalised, are, and the outputs agree."""
    if any(got.get(s) is None or got[s].shape != want[s].shape for s in want):
        shapes = {s: None if got.get(s) is None else tuple(got[s].shape) for s in want}
        return Outcome(family, "mismatch", f"captured {shapes}, eager {({s: tuple(w.shape) for s, w in want.items()})}",
                       float("inf"))
    error = max((got[s] - want[s]).abs().max().item() for s in want)
    if error > TOLERANCE:
        renormalised = max((_renormalised(got[s], want[s]) - want[s]).abs().max().item() for s in want)
        if renormalised <= TOLERANCE and output_gap.abs().max().item() <= 1e-5:
            return Outcome(family, "exact", "eager reports its rows without the sink's share; attnviz keeps the "
                                             "real tokens' share (rows sum to 1 minus the sink's)", renormalised)
        return Outcome(family, "mismatch", f"largest difference {error:.2g}", error)
    if output_gap.abs().max().item() > 1e-4:  # same weights, different outputs: the values went wrong
        return Outcome(family, "mismatch", f"outputs differ by {output_gap.abs().max().item():.2g}", error)
    return Outcome(family, "exact", "", error)


def _renormalised(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """Rows over the real keys summing to 1; a padding query's row (all keys masked, the sink takes it all) is
    left to eager's, which is the same uniform row the mask makes."""
    total = got.sum(-1, keepdim=True)
    return torch.where(total > 1e-30, got / total.clamp_min(1e-30), want)


def _output(result) -> torch.Tensor:
    for name in ("logits", "last_hidden_state", "pooler_output"):
        if getattr(result, name, None) is not None:
            return getattr(result, name)
    return result[0]


def _short(err, limit: int = 160) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
