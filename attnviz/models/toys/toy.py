"""The toy Transformers, nanoGPT-sized: encoder, decoder, encoder-decoder and ViT.

Every attention module calls attnviz's kernel, so a toy's score function and mask pattern are the
ones registered in ``attnviz.attention.kernel``, and every weight it computes can be recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from attnviz.attention.kernel import MASKS, attention
from attnviz.errors import BadInput
from attnviz.models.toys.config import ToyConfig


@dataclass
class ToyOutput:
    logits: torch.Tensor  # (B, T, vocab) from an LM head, (B, n_classes) from a classifier
    last_hidden_state: torch.Tensor  # (B, T, d_model) of the last stack (the decoder's, if there is one)
    encoder_last_hidden_state: torch.Tensor | None = None  # (B, S, d_model), encoder-decoder only


def sinusoids(n: int, d: int) -> torch.Tensor:
    """Fixed positions (n, d) of Vaswani et al. 2017 (arXiv:1706.03762, section 3.5)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]  # (n, 1)
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))  # (ceil(d/2),)
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : d // 2]
    return table


def pattern_mask(config: ToyConfig, q_len: int, k_len: int, device, causal: bool = False) -> torch.Tensor:
    """bool (Q, K): the configured pattern, AND causal for decoder self-attention."""
    # On text "axial" rows are `stride` tokens long: its default side, sqrt(K), would change with padding.
    grid = config.grid if config.kind == "vision" else config.stride
    opts = dict(window=config.window, stride=config.stride, grid=grid, prefix=1)
    allowed = MASKS.get(config.mask)(q_len, k_len, device, **opts)
    if causal:
        allowed = allowed & MASKS.get("causal")(q_len, k_len, device)
    return allowed


def kernel_mask(allowed: torch.Tensor, key_keep: torch.Tensor, self_attention: bool) -> torch.Tensor:
    """bool (B, 1, Q, K) for the kernel: pattern (Q, K) AND key padding (key_keep (B, K), 1 = real)."""
    keep = key_keep.bool()[:, None, None, :]  # (B, 1, 1, K)
    mask = allowed[None, None] & keep  # (B, 1, Q, K)
    if self_attention:
        # A padding query keeps its own key: an empty row may be NaN (SDPA backends differ) and 0 * NaN leaks.
        eye = torch.eye(*allowed.shape, dtype=torch.bool, device=allowed.device)
        mask = mask | (eye[None, None] & ~keep)
    return mask


class _Heads(nn.Module):
    """What both attention classes share: the attributes the kernel and capture read, and the output."""

    def __init__(self, config: ToyConfig, stack: str, layer_idx: int, is_causal: bool):
        super().__init__()
        self.n_heads, self.head_dim = config.n_heads, config.d_model // config.n_heads
        self.attnviz_score = config.score
        self.attnviz_stack = stack  # "encoder" | "decoder" | "cross"
        self.layer_idx = layer_idx
        self.is_causal = is_causal
        self.num_key_value_groups = 1
        self.dropout = config.dropout
        self.proj = nn.Linear(config.d_model, config.d_model)
        if config.score == "additive":
            self.add_q = nn.Linear(self.head_dim, self.head_dim)
            self.add_k = nn.Linear(self.head_dim, self.head_dim, bias=False)
            self.add_v = nn.Linear(self.head_dim, 1, bias=False)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)

    def attend(self, q, k, v, mask: torch.Tensor) -> torch.Tensor:
        out, _ = attention(self, q, k, v, mask, scaling=self.head_dim**-0.5, dropout=self.dropout)
        b, t = out.shape[:2]
        return self.proj(out.reshape(b, t, -1))  # (B, Q, d)


class SelfAttention(_Heads):
    def __init__(self, config: ToyConfig, stack: str, layer_idx: int, is_causal: bool = False):
        super().__init__(config, stack, layer_idx, is_causal)
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # 3 x (B, T, d)
        return self.attend(self.split(q), self.split(k), self.split(v), mask)


class CrossAttention(_Heads):
    def __init__(self, config: ToyConfig, layer_idx: int):
        super().__init__(config, "cross", layer_idx, is_causal=False)
        self.q = nn.Linear(config.d_model, config.d_model)
        self.kv = nn.Linear(config.d_model, 2 * config.d_model)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        k, v = self.kv(memory).chunk(2, dim=-1)  # 2 x (B, S, d)
        return self.attend(self.split(self.q(x)), self.split(k), self.split(v), mask)


def _mlp(config: ToyConfig) -> nn.Sequential:
    d = config.d_model
    return nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(config.dropout))


class EncoderBlock(nn.Module):
    """Pre-LayerNorm (Xiong et al. 2020, arXiv:2002.04745): trains without warm-up at toy scale."""

    def __init__(self, config: ToyConfig, layer_idx: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(config.d_model), nn.LayerNorm(config.d_model)
        self.attn = SelfAttention(config, "encoder", layer_idx)
        self.mlp, self.drop = _mlp(config), nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), mask))
        return x + self.mlp(self.ln2(x))


class DecoderBlock(nn.Module):
    """Causal self-attention, then (encoder-decoder only) cross-attention, then the MLP."""

    def __init__(self, config: ToyConfig, layer_idx: int, cross: bool):
        super().__init__()
        d = config.d_model
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = SelfAttention(config, "decoder", layer_idx, is_causal=True)
        if cross:
            self.ln_cross, self.cross_attn = nn.LayerNorm(d), CrossAttention(config, layer_idx)
        self.mlp, self.drop = _mlp(config), nn.Dropout(config.dropout)

    def forward(self, x, mask, memory=None, cross_mask=None) -> torch.Tensor:
        x = x + self.drop(self.self_attn(self.ln1(x), mask))
        if memory is not None:
            x = x + self.drop(self.cross_attn(self.ln_cross(x), memory, cross_mask))
        return x + self.mlp(self.ln2(x))


class Stack(nn.Module):
    def __init__(self, blocks: list[nn.Module], d_model: int):
        super().__init__()
        self.layers = nn.ModuleList(blocks)
        self.ln_f = nn.LayerNorm(d_model)  # pre-LN leaves the residual stream unnormalised

    def forward(self, x: torch.Tensor, *masks_and_memory) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, *masks_and_memory)
        return self.ln_f(x)


def _init(module: nn.Module) -> None:
    # GPT-2's initialisation, as nanoGPT does it; the caller seeds torch.
    if isinstance(module, (nn.Linear, nn.Embedding, nn.Conv2d)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, (nn.Linear, nn.Conv2d)) and module.bias is not None:
        nn.init.zeros_(module.bias)


class ToyTransformer(nn.Module):
    """One class for the four kinds; forward takes Hugging Face's keyword arguments."""

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        d, kind = config.d_model, config.kind
        if kind == "vision":
            self.patch = nn.Conv2d(config.channels, d, config.patch_size, stride=config.patch_size)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        else:
            self.embed = nn.Embedding(config.vocab_size, d)
        if config.positions == "learned":
            self.pos = nn.Embedding(config.n_positions, d)
        else:
            self.register_buffer("pos_table", sinusoids(config.n_positions, d), persistent=False)
        self.drop = nn.Dropout(config.dropout)
        if kind != "decoder":
            self.encoder = Stack([EncoderBlock(config, i) for i in range(config.n_layers)], d)
        if kind in ("decoder", "encoder-decoder"):
            cross = kind == "encoder-decoder"
            self.decoder = Stack([DecoderBlock(config, i, cross) for i in range(config.n_layers)], d)
        self.head = nn.Linear(d, config.n_classes or config.vocab_size)
        self.apply(_init)
        if kind == "vision":
            nn.init.normal_(self.cls_token, std=0.02)

    def get_input_embeddings(self) -> nn.Module:
        return self.patch if self.config.kind == "vision" else self.embed

    @property
    def device(self) -> torch.device:  # as on Hugging Face models
        return next(self.parameters()).device

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, decoder_input_ids=None,
                decoder_attention_mask=None, decoder_inputs_embeds=None, pixel_values=None) -> ToyOutput:
        kind = self.config.kind
        if kind == "vision":
            return self._vision(pixel_values)
        x, keep = self._embed(input_ids, inputs_embeds, attention_mask)
        if kind == "decoder":
            h = self.decoder(x, self._self_mask(keep, causal=True))
            return ToyOutput(self._head(h, keep), h)
        h = self.encoder(x, self._self_mask(keep, causal=False))
        if kind == "encoder":
            return ToyOutput(self._head(h, keep), h)
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids, decoder_attention_mask = self._shift_right(input_ids, keep)
        y, dkeep = self._embed(decoder_input_ids, decoder_inputs_embeds, decoder_attention_mask)
        cross = kernel_mask(MASKS.get("global")(y.shape[1], h.shape[1], h.device), keep, self_attention=False)
        out = self.decoder(y, self._self_mask(dkeep, causal=True), h, cross)
        return ToyOutput(self.head(out), out, h)

    def _positions(self, n: int) -> torch.Tensor:
        return self.pos.weight[:n] if self.config.positions == "learned" else self.pos_table[:n]  # (n, d)

    def _embed(self, ids, embeds, mask) -> tuple[torch.Tensor, torch.Tensor]:
        if embeds is None:
            if ids is None:
                raise BadInput("give input_ids or inputs_embeds")
            embeds = self.embed(ids)  # (B, T, d)
        b, t, _ = embeds.shape
        if t > self.config.n_positions:
            raise BadInput(f"{t} tokens given; this toy takes at most {self.config.n_positions}")
        keep = mask if mask is not None else torch.ones(b, t, dtype=torch.long, device=embeds.device)
        return self.drop(embeds + self._positions(t)), keep

    def _self_mask(self, keep: torch.Tensor, causal: bool) -> torch.Tensor:
        t = keep.shape[1]
        return kernel_mask(pattern_mask(self.config, t, t, keep.device, causal), keep, self_attention=True)

    def _head(self, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        if not self.config.n_classes:
            return self.head(h)  # (B, T, vocab)
        if self.config.kind == "decoder":
            # Only a causal model's last real token (right padding) has read the whole input.
            last = keep.long().sum(1) - 1
            return self.head(h[torch.arange(h.shape[0], device=h.device), last])  # (B, n_classes)
        return self.head(h[:, 0])  # (B, n_classes)

    def _shift_right(self, ids, keep) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing on the input itself, as BART does when no decoder inputs are given."""
        if ids is None:
            raise BadInput("an encoder-decoder toy given inputs_embeds also needs decoder inputs")
        start = torch.full_like(ids[:, :1], self.config.bos_id)
        return torch.cat([start, ids[:, :-1]], 1), torch.cat([torch.ones_like(keep[:, :1]), keep[:, :-1]], 1)

    def _vision(self, pixel_values) -> ToyOutput:
        cfg = self.config
        shape = (cfg.channels, cfg.image_size, cfg.image_size)
        if pixel_values is None or tuple(pixel_values.shape[1:]) != shape:
            raise BadInput(f"a vision toy needs pixel_values of shape (B, {', '.join(map(str, shape))})")
        x = self.patch(pixel_values.to(self.patch.weight.dtype))  # (B, d, G, G)
        x = x.flatten(2).transpose(1, 2)  # (B, G*G, d)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + G*G, d)
        x = self.drop(x + self._positions(x.shape[1]))
        keep = torch.ones(x.shape[:2], dtype=torch.long, device=x.device)
        h = self.encoder(x, self._self_mask(keep, causal=False))
        return ToyOutput(self.head(h[:, 0]), h)


def build_toy(config: ToyConfig | dict) -> ToyTransformer:
    """A freshly initialised toy; seed torch first for reproducible weights."""
    return ToyTransformer(config if isinstance(config, ToyConfig) else ToyConfig.from_dict(config))
