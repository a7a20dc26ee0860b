"""AttentionMaps: the one object that flows from capture to rendering, attribution and snapshots.

On disk it is one ``.safetensors`` file: tensor ``weights`` (layer, batch, head, query, key),
tensor ``mask`` (batch, seq), optional ``decoder``/``cross``/``decoder_mask`` tensors for
encoder-decoder models, and every other field as JSON in the file's metadata.

For inputs too long to keep L x L, ``weights`` is absent (or holds only the query rows from ``query_start``) and
per-head statistics computed exactly by the kernel are kept instead: ``entropy``, ``sink``, ``distance``
(layer, batch, head, query), ``received`` (layer, batch, head, key), ``overview`` (layer, batch, head, R, R),
``topk_index`` and ``topk_weight`` (layer, batch, head, query, k); an encoder-decoder's other stacks prefix them
(``decoder.entropy``, ``cross.received``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch

from attnviz.errors import AttnvizError, BadInput
from attnviz.io import write_atomically

FORMAT_VERSION = 1
MAX_RANGE = 100_000  # the most layers or heads one range may name when the model's count is not known
_TENSORS = ("weights", "mask", "decoder", "cross", "decoder_mask")
STATS = ("entropy", "sink", "distance", "received", "overview", "topk_index", "topk_weight")
_STAT_NAMES = {f"{prefix}{name}" for prefix in ("", "decoder.", "cross.") for name in STATS}


@dataclass
class AttentionMaps:
    """Captured attention (module docstring): ``weights`` (layer, B, head, query, key) or None when only the
    per-head statistics were kept (``stats``: entropy, sink, distance (layer, B, head, query), received
    (layer, B, head, key), overview (layer, B, head, R, R), topk_index/topk_weight (layer, B, head, query, k));
    ``mask`` (B, S) 1 on real tokens; ``tokens`` B lists of S strings; ``layers``/``heads`` the model numbers kept.
    ``save(path)`` / ``AttentionMaps.load(path)``: one .safetensors file, loadable without the model."""

    weights: torch.Tensor | None  # (layer, batch, head, query, key); the encoder stack of an encoder-decoder
    mask: torch.Tensor  # (batch, seq) 1 for real tokens, 0 for padding
    tokens: list[list[str]]  # per example, padded to seq with the tokenizer's pad string
    layers: list[int]  # model layer number of each entry along weights' first axis
    heads: list[int]  # model head number of each entry along weights' head axis
    model: str = ""  # model id (built-in name, folder or hub id)
    kind: str = "encoder"  # encoder | decoder | encoder-decoder | vision
    num_layers: int = 0  # layers the model has (not just the captured ones)
    num_heads: int = 0  # heads per layer the model has
    backend: str = "attnviz"  # attnviz (own kernel) or eager (output_attentions fallback)
    decoder: torch.Tensor | None = None  # (layer, batch, head, tgt, tgt) decoder self-attention
    cross: torch.Tensor | None = None  # (layer, batch, head, tgt, src) cross-attention
    decoder_mask: torch.Tensor | None = None  # (batch, tgt)
    decoder_tokens: list[list[str]] = field(default_factory=list)  # per example, target side
    special: list[str] = field(default_factory=list)  # token strings that --hide-special drops
    notes: list[str] = field(default_factory=list)  # what happened to the inputs (e.g. truncation)
    stats: dict[str, torch.Tensor] = field(default_factory=dict)  # per-head statistics (module docstring)
    query_start: int = 0  # the model position of weights' first query row (a kept query range)
    pieces: list[list[str]] = field(default_factory=list)  # per example, the tokenizer's raw pieces beside ``tokens``
    bounds: list[str] = field(default_factory=list)  # per example, W/C/+ per token: how tokens form words (readable.py)

    def __getattr__(self, name: str):
        """``maps.entropy``, ``maps.received``, ...: the main stack's statistics (None when not kept)."""
        if name in STATS:
            return self.__dict__.get("stats", {}).get(name)
        raise AttributeError(name)

    @property
    def dtype(self) -> str:
        return str((self.weights if self.weights is not None else self.stats["entropy"]).dtype).replace("torch.", "")

    def layer_index(self, layer: int) -> int:
        """Position along the first axis of the model layer ``layer`` (negative counts from the end)."""
        if layer < 0:
            layer = self.layers[layer] if -len(self.layers) <= layer else layer
        if layer not in self.layers:
            raise BadInput(f"layer {layer} is out of range; captured layers: {_ranges(self.layers)}")
        return self.layers.index(layer)

    def head_index(self, head: int) -> int:
        if head not in self.heads:
            raise BadInput(f"head {head} is out of range; captured heads: {_ranges(self.heads)}")
        return self.heads.index(head)

    def valid(self, example: int) -> torch.Tensor:
        """Indices of the real (unpadded) positions of one example."""
        return torch.nonzero(self.mask[example] > 0).flatten()

    def stack(self, name: str = "encoder") -> torch.Tensor:
        """One attention stack by name: encoder (or self), decoder, cross."""
        if self.kind != "encoder-decoder" and name in ("encoder", "decoder", "self"):
            return self.weights  # a single-stack model: its self-attention, whatever it is called
        found = {"encoder": self.weights, "self": self.weights, "decoder": self.decoder, "cross": self.cross}
        if name not in found or found[name] is None:
            have = [k for k in ("encoder", "decoder", "cross") if found[k] is not None]
            raise BadInput(f"no {name!r} attention in these maps; available: {', '.join(have)}")
        return found[name]

    def with_statistics(self, top_k: int = 8, overview: int = 64) -> "AttentionMaps":
        """These maps with the main stack's statistics (``attnviz.stats``) computed from the full weights when they
        were not kept by the capture: the long-input views then draw short inputs too."""
        if self.stats or self.weights is None:
            return self
        from attnviz.stats import of_weights

        stats = of_weights(self.weights, self.mask, self.mask, top_k=top_k, overview=overview)
        return replace(self, stats=stats)

    def to_parts(self) -> tuple[dict[str, torch.Tensor], str]:
        """What a file holds: the tensors (contiguous, on the CPU) and every other field as JSON."""
        tensors = {n: _own(getattr(self, n)) for n in _TENSORS if getattr(self, n) is not None}
        tensors.update({n: _own(t) for n, t in self.stats.items()})
        meta = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in (*_TENSORS, "stats")}
        return tensors, json.dumps({**meta, "format_version": FORMAT_VERSION}, ensure_ascii=False)

    @classmethod
    def from_parts(cls, tensors: dict[str, torch.Tensor], meta_json: str) -> "AttentionMaps":
        """The inverse of ``to_parts``; other tensors (a snapshot's attributions) and unknown fields are ignored."""
        meta = json.loads(meta_json)
        known = {f.name for f in fields(cls)} - {"stats"}
        stats = {k: v for k, v in tensors.items() if k in _STAT_NAMES}
        found = {"weights": None, **{k: v for k, v in tensors.items() if k in _TENSORS}}
        return cls(**found, **{k: v for k, v in meta.items() if k in known}, stats=stats)

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically: a temporary file beside the target, then a rename."""
        from safetensors.torch import save_file

        tensors, meta = self.to_parts()

        def write(tmp: Path) -> None:
            try:
                save_file(tensors, str(tmp), metadata={"attnviz": meta})
            except Exception as err:  # safetensors' own error type for a full disk or a size limit
                raise OSError(f"{err}") from None

        return write_atomically(Path(path), write)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AttentionMaps":
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise BadInput(f"no such file: {path}")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = (f.metadata() or {})["attnviz"]
                tensors = {k: f.get_tensor(k) for k in f.keys() if k in _TENSORS or k in _STAT_NAMES}  # snapshots add more
            maps = cls.from_parts(tensors, meta)
        except Exception as err:  # safetensors raises its own SafetensorError; JSON and fields fail too
            raise BadInput(f"{path} is not an attnviz maps file ({type(err).__name__})") from None
        problem = contract_problem(maps)
        if problem:
            raise BadInput(f"{path} is not a valid attnviz maps file: {problem}")
        return maps


def contract_problem(maps: AttentionMaps) -> str | None:
    """What breaks the data contract (module docstring) in ``maps``, or None: every shape, list and label agrees."""
    if maps.weights is None:
        return _stats_problem(maps)
    problem = _stack_problem("weights", maps.weights, maps.mask, maps.tokens, maps)
    if problem or maps.decoder is None:
        return problem
    problem = _stack_problem("decoder", maps.decoder, maps.decoder_mask, maps.decoder_tokens, maps)
    if problem is None and maps.cross is not None:
        want = (*maps.decoder.shape[:4], maps.weights.shape[-1])
        if tuple(maps.cross.shape) != want:
            problem = f"cross is shaped {tuple(maps.cross.shape)}, not {want}"
    return problem


def _stats_problem(maps: AttentionMaps) -> str | None:
    """Maps without full weights: the main stack's statistics, each (layer, batch, head, ...) over the positions."""
    if not all(isinstance(maps.stats.get(n), torch.Tensor) for n in STATS):
        return "it holds neither weights nor the statistics " + ", ".join(STATS)
    if not isinstance(maps.mask, torch.Tensor) or maps.mask.dim() != 2:
        return "the mask must be shaped (batch, seq)"
    batch, seq = maps.mask.shape
    lead = (len(maps.layers), batch, len(maps.heads))
    for name in STATS:
        t = maps.stats[name]
        if tuple(t.shape[:3]) != lead or (name != "overview" and t.shape[3] != seq):
            return f"{name} is shaped {tuple(t.shape)}; it must start (layer, batch, head, seq) = {(*lead, seq)}"
    if not (isinstance(maps.tokens, list) and len(maps.tokens) == batch
            and all(isinstance(t, list) and len(t) == seq and all(isinstance(x, str) for x in t) for t in maps.tokens)):
        return f"the tokens must be {batch} lists of {seq} strings"
    return None


def _stack_problem(name: str, weights, mask, tokens, maps: AttentionMaps) -> str | None:
    """One stack (layer, batch, head, query, key) against its mask (batch, seq) and tokens."""
    if not isinstance(weights, torch.Tensor) or weights.dim() != 5 or 0 in weights.shape:
        return f"{name} must be a non-empty (layer, batch, head, query, key) tensor"
    if not weights.is_floating_point() or bool((weights < 0).any()):
        return f"{name} must hold attention weights (non-negative floats)"
    n_layers, batch, n_heads, _, keys = weights.shape
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != (batch, keys):
        return f"the mask of {name} must be shaped (batch, seq) = ({batch}, {keys})"
    if not (isinstance(tokens, list) and len(tokens) == batch
            and all(isinstance(t, list) and len(t) == keys and all(isinstance(x, str) for x in t) for t in tokens)):
        return f"the tokens of {name} must be {batch} lists of {keys} strings"
    for label, values, size in (("layers", maps.layers, n_layers), ("heads", maps.heads, n_heads)):
        if not (isinstance(values, list) and len(values) == size and len(set(values)) == size
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)):
            return f"{label} must list {size} distinct non-negative layer or head numbers"
    return None


def _own(t: torch.Tensor) -> torch.Tensor:
    """Contiguous on the CPU and owning its storage: a view into a larger batch would be written whole."""
    t = t.detach().cpu().contiguous()
    return t if t.untyped_storage().nbytes() == t.nbytes else t.clone()


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    out, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            out.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return ", ".join(out) or "none"


def parse_ranges(text: str | None, size: int, what: str) -> list[int] | None:
    """'0,3-5' -> [0, 3, 4, 5], checked against range(size). None or '' or 'all' -> None (all)."""
    if text is None or text.strip() in ("", "all"):
        return None
    chosen: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            first, last = int(lo), int(hi) if hi else int(lo)
            if first > last:
                raise BadInput(f"{what}s {part.strip()} run backwards; write {last}-{first}")
            check_indices([first, last], size, what)  # bounds first: a range is never built past the model
            if last - first >= MAX_RANGE:
                raise BadInput(f"{what}s {part.strip()} name more than {MAX_RANGE:,} {what}s")
            chosen.extend(range(first, last + 1))
    except ValueError:
        raise BadInput(f"cannot read {what}s {text!r}; write e.g. 0,3-5") from None
    check_indices(chosen, size, what)
    return sorted(set(chosen))


def check_indices(chosen: list[int] | None, size: int, what: str) -> None:
    """Layers or heads as plain indices into range(size): saved maps label them with these numbers."""
    if chosen is None or not size:
        return
    if not chosen:
        raise BadInput(f"no {what}s chosen; give at least one of 0-{size - 1}, or None for all")
    bad = [v for v in chosen if not 0 <= v < size]
    if bad:
        raise BadInput(f"{what} {bad[0]} is out of range; valid {what}s: 0-{size - 1}")


__all__ = ["AttentionMaps", "AttnvizError", "check_indices", "parse_ranges"]
