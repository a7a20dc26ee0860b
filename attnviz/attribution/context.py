"""The run context of the text methods: one encoded batch, its target, and how to run the model on
input embeddings; plus what several methods share (frozen parameters, recomputed layers, baselines)."""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from attnviz.attribution.methods.options import BASELINES
from attnviz.attribution.recompute import recomputed
from attnviz.attention.sites import attention_sites, layer_path
from attnviz.errors import BadInput

SEQUENCE_INPUTS = ("attention_mask", "token_type_ids", "position_ids")  # model inputs along the input's positions


@dataclass
class Context:
    """One batch, its target and how to run the model from input embeddings."""

    loaded: Any  # LoadedModel
    batch: dict  # model keyword arguments (input_ids, attention_mask, ...)
    tokens: list[list[str]]
    mask: torch.Tensor  # (B, S) on the model's device
    target: Any  # attnviz.attribution.targets.Target
    embeds: torch.Tensor  # (B, S, D) the input embeddings, detached
    special: torch.Tensor  # (B, S) bool: special tokens and padding, never occluded or baselined
    chunk: int = 32  # variants per forward pass (integrated gradients, occlusion, faithfulness)
    cache: dict = field(default_factory=dict)  # shared between methods of one run (e.g. F(x), baselines)
    pieces: list[list[str]] = field(default_factory=list)  # per example, the raw pieces beside ``tokens``
    bounds: list[str] = field(default_factory=list)  # per example, W/C/+ per token (models/readable.py)
    context: torch.Tensor | None = None  # (B, S) bool: tokens the model reads but that are not shown (a span's)

    def __post_init__(self):
        check_runs_from_embeddings(self.loaded)

    @property
    def size(self) -> int:
        return self.embeds.shape[0]

    def run(self, embeds: torch.Tensor, rows: torch.Tensor | None = None, **more):
        """Forward ``embeds`` (n, S' <= S, D), row i an input of example ``rows[i]``.

        ``rows`` defaults to a repeated batch: example e repeated k times, in blocks of B. Embeddings
        cut short (S' < S) drop trailing positions that are padding in every row.
        """
        rows = self.examples(embeds.shape[0]) if rows is None else rows
        kwargs = {n: v[rows][:, :embeds.shape[1]] if n in SEQUENCE_INPUTS else v[rows]
                  for n, v in self.batch.items() if n != "input_ids"}
        if "takes_cache" not in self.cache:
            self.cache["takes_cache"] = "use_cache" in inspect.signature(self.loaded.model.forward).parameters
        if self.cache["takes_cache"]:
            kwargs["use_cache"] = False  # a key-value cache is memory spent on nothing here
        # a copy: a model may scale its input in place (CTRL does), which would change attnviz's own embeddings
        # (or fail on a leaf that needs its gradient); the gradient still flows back to ``embeds``
        return self.loaded.model(inputs_embeds=embeds.clone(), **kwargs, **more)

    def examples(self, n: int) -> torch.Tensor:
        """Example index of each row of a (n, ...) repeated batch."""
        return torch.arange(n, device=self.embeds.device) % self.size

    def lengths(self) -> torch.Tensor:
        """(B,) positions up to and including each example's last real token: the rest is right padding."""
        at = torch.arange(1, self.mask.shape[1] + 1, device=self.mask.device)
        return (self.mask.long() * at).amax(1)

    def score(self, embeds: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The target's score (n,) for a batch of embeddings (see ``run``)."""
        rows = self.examples(embeds.shape[0]) if rows is None else rows
        return self.target.score(self.run(embeds, rows), rows)

    def curve_value(self, embeds: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The target's probability (cosine for sentence encoders) for a batch of embeddings (see ``run``)."""
        rows = self.examples(embeds.shape[0]) if rows is None else rows
        return self.target.prob(self.run(embeds, rows), rows)

    def variants(self, rows: torch.Tensor, swap: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                 value) -> torch.Tensor:
        """``value(embeds, rows)`` (n,) of the inputs ``where(swap, a, b)`` of examples ``rows`` (n,).

        swap (n, S) bool; a, b (B, S, D). Rows run ``chunk`` at a time, shortest examples first, and
        each pass is cut to its longest example, so a short text in a padded batch costs its own length.
        """
        lengths = self.lengths()
        order = lengths[rows].argsort(stable=True)
        out = torch.empty(len(rows), device=a.device)
        with torch.no_grad():
            for start in range(0, len(rows), self.chunk):
                at = order[start:start + self.chunk]
                r = rows[at]
                n = int(lengths[r].max())
                out[at] = value(torch.where(swap[at, :n, None], a[r, :n], b[r, :n]), r).float()
        return out


def embedded(loaded, ids: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(input embeddings (B, S, D), detached; (B, S) bool: the special tokens, and the padding where ``mask`` is
    given, which are never occluded or baselined)."""
    with torch.no_grad():
        embeds = loaded.model.get_input_embeddings()(ids).detach()
    special = special_tokens(loaded, ids)
    return embeds, special if mask is None else special | (mask == 0)


def special_tokens(loaded, ids: torch.Tensor) -> torch.Tensor:
    """(B, S) bool: where ``ids`` holds one of the tokenizer's special tokens."""
    specials = list(getattr(loaded.tokenizer, "all_special_ids", []) or [])
    return torch.isin(ids, torch.tensor(specials, device=ids.device, dtype=ids.dtype))


def check_runs_from_embeddings(loaded) -> None:
    """A model that picks its experts by token id (DeepSeek V4's hash routing reads ``input_ids`` in its layers)
    cannot run from input embeddings, which these methods feed it: refused (exit 2) rather than failing inside."""
    config = getattr(loaded.model, "config", None)
    if "hash_moe" in (getattr(config, "mlp_layer_types", None) or ()):
        raise BadInput(f"{loaded.name} routes its experts by token id (hash routing), so it cannot run from input "
                       "embeddings, which this method needs; generate's and capture's attention read it from its ids")


@contextmanager
def frozen_params(model: torch.nn.Module) -> Iterator[None]:
    """Parameters stop requiring grad, so autograd keeps only what input gradients need.

    Saved activations for weight gradients are most of a backward pass's memory; restored on exit.
    """
    was = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in was:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in was:
            p.requires_grad_(flag)


def recomputed_layers(model: torch.nn.Module):
    """Every Transformer layer but the last recomputes its activations in the backward pass (see recompute)."""
    paths = list(dict.fromkeys(layer_path(s.name) for s in attention_sites(model)))
    return recomputed([model.get_submodule(p) for p in paths[:-1] if p])


def input_grad(ctx: Context, embeds: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """d score / d embeds for a (n, S', D) batch of embeddings (see ``Context.run``)."""
    embeds = embeds.detach().requires_grad_(True)
    with torch.enable_grad():
        score = ctx.score(embeds, rows)
        (grad,) = torch.autograd.grad(score.sum(), embeds)
    return grad  # (n, S, D)


def zero_special(ctx: Context, scores: torch.Tensor) -> torch.Tensor:
    """Scores (B, S) with 0 at padding."""
    return scores.masked_fill(ctx.mask == 0, 0.0)


def baseline(ctx: Context, kind: str = "pad") -> torch.Tensor:
    """The reference input (B, S, D): real non-special tokens replaced by PAD or MASK embeddings, or zeros.

    Special tokens and padding keep their embeddings, so the baseline differs from the input only
    where there is text to explain.
    """
    if kind not in BASELINES:
        raise BadInput(f"unknown baseline {kind!r}; choose {', '.join(BASELINES)}")
    key = ("baseline", kind)
    if key not in ctx.cache:
        if kind == "zeros":
            fill = torch.zeros_like(ctx.embeds[0, 0])
        else:
            tok = ctx.loaded.tokenizer
            tid = tok.pad_token_id if kind == "pad" else getattr(tok, "mask_token_id", None)
            if tid is None:
                raise BadInput(f"this tokenizer has no {kind.upper()} token; choose another --baseline")
            ids = torch.tensor([tid], device=ctx.embeds.device)
            fill = ctx.loaded.model.get_input_embeddings()(ids)[0].detach().to(ctx.embeds.dtype)  # (D,)
        ctx.cache[key] = torch.where(ctx.special[..., None], ctx.embeds, fill)  # (B, S, D)
    return ctx.cache[key]
