"""LoadedModel: a model with its tokenizer or image processor, and how inputs become a batch."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import torch

from attnviz.errors import BadInput
from attnviz.models.readable import readable_ids


@dataclass
class Encoded:
    batch: dict  # keyword arguments for model(**batch), on the model's device
    tokens: list[list[str]]  # per example, padded to the batch's length
    mask: torch.Tensor  # (B, S) 1 = real token
    notes: list[str] = field(default_factory=list)  # e.g. which inputs were truncated
    decoder_tokens: list[list[str]] = field(default_factory=list)
    decoder_mask: torch.Tensor | None = None  # (B, T)
    pieces: list[list[str]] = field(default_factory=list)  # per example, the tokenizer's raw pieces ("Ġmovie")
    bounds: list[str] = field(default_factory=list)  # per example, W/C/+ per token (models/readable.py)


@dataclass
class LoadedModel:
    """A model ready to explain: the torch module with its tokenizer or image processor and the facts attnviz
    needs (kind, task, layers, heads, labels, the backend it computes attention with). ``encode(inputs)`` gives one
    padded batch: ``batch`` (model keyword arguments, input_ids (B, S)), ``tokens`` (B lists of S strings),
    ``mask`` (B, S), and for an encoder-decoder the decoded ``decoder_tokens`` and ``decoder_mask`` (B, T)."""

    model: torch.nn.Module
    name: str  # what the user asked for: a built-in name, a folder or a hub id
    kind: str  # encoder | decoder | encoder-decoder | vision
    task: str  # embedding | classification | masked-lm | causal-lm | seq2seq | image-classification
    num_layers: int
    num_heads: int
    backend: str  # attnviz (own kernel) or eager (output_attentions fallback)
    tokenizer: Any = None
    processor: Any = None  # image processor for vision models
    labels: list[str] = field(default_factory=list)  # class names of a classifier
    multi_label: bool = False  # a classifier whose classes are independent (sigmoid), not one of them (softmax)
    max_length: int = 512  # longest input in tokens
    source: str = ""  # where the weights come from, for `attnviz models`
    architecture: str = ""  # model class name
    meta: dict = field(default_factory=dict)  # extra facts (task description, accuracy, ...)
    answers: Any = None  # an encoder-decoder's output: models.seq2seq.Answers (None: the model's, at most 64 tokens)

    @property
    def device(self) -> torch.device:
        """Where inputs go: the model's parameters' device or, placed by accelerate, its first module's (a layer
        offloaded to disk computes on the CPU; accelerate's hooks move activations between the devices)."""
        placed = getattr(self.model, "hf_device_map", None)
        if placed:
            first = next(iter(placed.values()))
            return torch.device("cpu" if first == "disk" else f"cuda:{first}" if isinstance(first, int) else first)
        return next(self.model.parameters()).device

    @functools.cached_property
    def sites(self) -> list:
        """The model's attention modules (``attention.sites``), found once: a loaded model's modules stay the same."""
        from attnviz.attention.sites import attention_sites

        return attention_sites(self.model)

    def class_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., C) logits -> probabilities: softmax over the classes, or each class's sigmoid if multi-label."""
        logits = logits.float()
        return logits.sigmoid() if self.multi_label else logits.softmax(-1)

    @property
    def special_tokens(self) -> list[str]:
        if self.tokenizer is None:
            return ["[CLS]", "[DIST]"]
        return list(getattr(self.tokenizer, "all_special_tokens", []))

    @property
    def forward_module(self) -> torch.nn.Module:
        """What runs the inputs: a full CLIP model's images go through its vision tower (its forward wants text too)."""
        if self.kind == "vision" and hasattr(self.model, "vision_model") and hasattr(self.model, "text_model"):
            return self.model.vision_model
        return self.model

    def probe_batch(self) -> dict:
        """A one-example batch as short as the model takes: enough to see how it computes attention."""
        if self.kind == "vision":
            from PIL import Image

            return self._encode_images([Image.new("RGB", (32, 32))]).batch
        batch = self._encode_texts(["a b"], "truncate").batch
        if self.kind == "encoder-decoder":
            start = self.meta.get("decoder_start") or 0
            batch["decoder_input_ids"] = torch.full((1, 2), start, dtype=torch.long, device=self.device)
        return batch

    def encode(self, inputs, *, on_long: str = "truncate", answers=None) -> Encoded:
        """Texts (or images, for vision models) -> one padded batch on the model's device; an encoder-decoder's
        decoder reads ``answers`` (models.seq2seq.Answers; default: ``self.answers``)."""
        if self.kind == "vision":
            return self._encode_images(inputs)
        enc = self._encode_texts(list(inputs), on_long)
        if self.kind == "encoder-decoder":
            self._add_decoder(enc, answers or self.answers)
        return enc

    def token_counts(self, texts: list[str]) -> list[int]:
        """How many tokens each text becomes as ``encode`` reads it, special tokens included, before any cut."""
        return [len(ids) for ids in self.tokenizer(texts, truncation=False, padding=False, return_tensors=None)["input_ids"]]

    def _encode_texts(self, texts: list[str], on_long: str) -> Encoded:
        check_texts(texts)
        if on_long not in ("truncate", "error"):
            raise BadInput(f"--on-long must be truncate or error, not {on_long!r}")
        lengths = self.token_counts(texts)
        notes = []
        for i, n in enumerate(lengths):
            if n > self.max_length:
                if on_long == "error":
                    raise BadInput(f"input {i + 1} is {n} tokens, longer than the model's maximum of {self.max_length}")
                notes.append(f"input {i + 1} was truncated from {n} to {self.max_length} tokens")
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        batch = {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        if self.kind == "decoder" and getattr(self.tokenizer, "padding_side", "right") == "left":
            # left padding: each text's positions start at its first real token, as when it runs alone
            batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # (B, S)
        read = [readable_ids(self.tokenizer, ids.tolist()) for ids in batch["input_ids"]]
        return Encoded(batch, [r.labels for r in read], batch["attention_mask"].cpu(), notes,
                       pieces=[r.pieces for r in read], bounds=[r.bounds for r in read])

    def _encode_images(self, images) -> Encoded:
        from attnviz.images import load_image

        pil = [load_image(im) if not hasattr(im, "convert") else im for im in images]
        if not pil:
            raise BadInput("no images given")
        pixels = self.processor(images=pil, return_tensors="pt")["pixel_values"].to(self.device)
        grid, prefix = _vision_layout(self.model, pixels)
        seq = prefix + grid * grid
        names = ["[CLS]", "[DIST]"][:prefix] + [f"p{r},{c}" for r in range(grid) for c in range(grid)]
        mask = torch.ones(len(pil), seq, dtype=torch.long)
        return Encoded({"pixel_values": pixels.to(self._dtype())}, [names] * len(pil), mask)

    def _dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def _add_decoder(self, enc: Encoded, answers) -> None:
        """The decoder's input: the model's own answer or a given one (models/seq2seq.py), with its mask."""
        from attnviz.models.seq2seq import Answers, decode, decoder_mask

        ids, notes = decode(self, enc.batch, answers or Answers())
        dmask = decoder_mask(ids, self.meta.get("eos"))  # (B, T)
        enc.batch["decoder_input_ids"] = ids
        enc.batch["decoder_attention_mask"] = dmask
        enc.decoder_mask = dmask.cpu()
        enc.decoder_tokens = [token_names(self.tokenizer, row.tolist()) for row in ids]
        enc.notes.extend(notes)


def check_texts(texts) -> None:
    """At least one text, and every input a text that is not blank."""
    if not texts:
        raise BadInput("no texts given")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise BadInput(f"input {i + 1} is not a text ({type(t).__name__})")
        if not t.strip():
            raise BadInput("text is empty" if len(texts) == 1 else f"text {i + 1} is empty")


def token_names(tokenizer, ids: list[int]) -> list[str]:
    """Token labels of ``ids`` as people read them ("␣movie", one Chinese character per label; the raw pieces
    come from models/readable.py); an id past the tokenizer's words (a vocabulary padded for speed) reads <id N>."""
    return readable_ids(tokenizer, ids).labels


def _vision_layout(model, pixels) -> tuple[int, int]:
    """(patches per side, leading tokens) of a vision model's sequence, from its config.

    DeiT adds a distillation token after CLS; the others have CLS alone.
    """
    cfg = getattr(model, "config", None)
    cfg = getattr(cfg, "vision_config", None) or cfg  # a full CLIP model: the image tower's own sizes
    size = getattr(cfg, "image_size", pixels.shape[-1])
    patch = getattr(cfg, "patch_size", 16)
    prefix = 2 if "deit" in type(model).__name__.lower() else 1
    return size // patch, prefix
