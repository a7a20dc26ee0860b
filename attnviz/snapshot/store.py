"""Numeric snapshots on disk: one baseline file per input plus ``manifest.json``, and their tolerances.

A baseline is one ``.safetensors`` file holding that input's attention, cut to its real (unpadded)
positions, as an AttentionMaps of batch 1 (tensors ``weights``, ``mask``, and for encoder-decoder
models ``decoder``, ``cross``, ``decoder_mask``), plus one tensor ``attr.<method>`` (S,) per
attribution method. Pure storage: nothing here runs a model (see ``attnviz.snapshot.run``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch

from attnviz.errors import BadInput, BaselineError  # noqa: F401  (BaselineError: re-exported)
from attnviz.io import write_atomically
from attnviz.maps import AttentionMaps

SNAPSHOT_VERSION = 1
MANIFEST = "manifest.json"
SUFFIX = ".safetensors"
_ATTR = "attr."


@dataclass(frozen=True)
class Tolerance:
    max_abs: float = 1e-4  # largest |current - baseline| of one attention weight, per layer and head
    mean_abs: float = 1e-5  # mean |current - baseline| over a head's real query x key cells
    jsd: float = 1e-6  # largest Jensen-Shannon divergence (nats) between a baseline and a current row
    argmax: float = 1.0  # least share of rows whose top key agrees (a tie within max_abs agrees)
    attr_max: float = 1e-3  # largest |current - baseline| attribution, relative to max |baseline|
    attr_rank: float = 0.9  # least Spearman rank correlation of attribution scores over tokens

    @classmethod
    def for_dtype(cls, dtype: str, **overrides) -> "Tolerance":
        """Defaults that fit the stored dtype: float16 keeps ~3 significant digits (eps 9.8e-4)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise BadInput(f"unknown tolerance {unknown[0]!r}; known: {', '.join(sorted(known))}")
        base = _HALF if dtype == "float16" else cls()
        values = {k: float(v) for k, v in overrides.items() if v is not None}
        for name, value in values.items():
            if not value >= 0:
                raise BadInput(f"tolerance {name} must be >= 0, not {value}")
        return replace(base, **values)


_HALF = Tolerance(max_abs=2e-3, mean_abs=5e-4, jsd=1e-4, argmax=1.0, attr_max=1e-2, attr_rank=0.9)


@dataclass
class Baseline:
    """One input's snapshot: its attention (batch 1, real positions only) and attribution scores."""

    key: str  # file stem, from input_key(text)
    text: str  # the input as given
    maps: AttentionMaps
    attributions: dict[str, torch.Tensor] = field(default_factory=dict)  # method -> (S,) float
    attr_info: dict[str, dict] = field(default_factory=dict)  # method -> target, prediction, ...


def input_key(text: str) -> str:
    """A file stem that is safe on every file system: a readable ASCII prefix and a content hash."""
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:32].strip("-")
    return f"{words or 'input'}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:10]}"


def baseline_path(folder: Path, key: str) -> Path:
    if not re.fullmatch(r"[a-z0-9-]+", key):
        raise BadInput(f"not a snapshot key: {key!r}")
    return Path(folder) / f"{key}{SUFFIX}"


def save_baseline(folder: Path, base: Baseline) -> Path:
    """Write atomically: a temporary file beside the target, then a rename."""
    from safetensors.torch import save_file

    path = baseline_path(folder, base.key)
    tensors, maps_meta = base.maps.to_parts()
    tensors.update({_ATTR + k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
                    for k, v in base.attributions.items()})
    snap = {"version": SNAPSHOT_VERSION, "key": base.key, "text": base.text, "attr_info": base.attr_info}
    text_meta = {"attnviz": maps_meta, "snapshot": json.dumps(snap, ensure_ascii=False)}
    return write_atomically(path, lambda tmp: save_file(tensors, str(tmp), metadata=text_meta))


def load_baseline(path: Path, regenerate: str = "") -> Baseline:
    """Read one baseline; an empty, truncated or foreign file is a BaselineError naming the file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise BaselineError(_how(f"baseline {path} is missing", regenerate))
    if path.stat().st_size == 0:
        raise BaselineError(_how(f"baseline {path} is corrupt (empty file)", regenerate))
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        maps, snap = AttentionMaps.from_parts(tensors, meta["attnviz"]), json.loads(meta["snapshot"])
    except Exception as err:  # safetensors raises its own SafetensorError for a truncated header
        why = "not a safetensors file" if "header" in str(err).lower() else f"{type(err).__name__}"
        raise BaselineError(_how(f"baseline {path} is corrupt ({why})", regenerate)) from None
    attrs = {k[len(_ATTR):]: v for k, v in tensors.items() if k.startswith(_ATTR)}
    return Baseline(snap["key"], snap["text"], maps, attrs, snap.get("attr_info", {}))


def write_manifest(folder: Path, manifest: dict) -> Path:
    text = json.dumps({"version": SNAPSHOT_VERSION, **manifest}, indent=2, ensure_ascii=False) + "\n"
    return write_atomically(Path(folder) / MANIFEST, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_manifest(folder: Path, regenerate: str = "") -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise BaselineError(_how(f"no snapshot manifest {path}", regenerate))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("inputs"), list):
            raise ValueError("no inputs list")
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise BaselineError(_how(f"snapshot manifest {path} is corrupt ({type(err).__name__})", regenerate)) from None
    return data


def stored_keys(folder: Path) -> list[str]:
    """Stems of the baseline files in ``folder`` (temporary files excluded)."""
    return sorted(p.name[: -len(SUFFIX)] for p in Path(folder).glob(f"*{SUFFIX}") if not p.name.startswith("."))


def _how(problem: str, regenerate: str) -> str:
    return f"{problem}; regenerate it with: {regenerate}" if regenerate else problem


def _positions(keep: torch.Tensor) -> slice | torch.Tensor:
    """A slice when the real positions are one run (left or right padding): a view, not a gather."""
    first, n = (int(keep[0]), keep.numel()) if keep.numel() else (0, 0)
    return slice(first, first + n) if n and int(keep[-1]) == first + n - 1 else keep


def _cut(stack: torch.Tensor, example: int, rows, cols) -> torch.Tensor:
    one = stack[:, example : example + 1]  # (L, 1, H, Q, K)
    rows_cut = one[..., rows, :]
    return rows_cut[..., cols]  # (L, 1, H, q, k)


def trim(maps: AttentionMaps, example: int) -> AttentionMaps:
    """One example of a padded batch, cut to its real positions: attention (L, 1, H, s, s)."""
    keep = maps.valid(example)
    at = _positions(keep)
    enc = _cut(maps.weights, example, at, at)
    dec = cross = dmask = None
    dec_tokens: list[list[str]] = []
    if maps.decoder is not None and maps.decoder_mask is not None:
        dkeep = torch.nonzero(maps.decoder_mask[example] > 0).flatten()
        dat = _positions(dkeep)
        dec = _cut(maps.decoder, example, dat, dat)  # (L, 1, H, t, t)
        cross = _cut(maps.cross, example, dat, at) if maps.cross is not None else None  # (L, 1, H, t, s)
        dmask = maps.decoder_mask[example : example + 1, dat]  # (1, t)
        dec_tokens = [[maps.decoder_tokens[example][i] for i in dkeep.tolist()]]
    tokens = [[maps.tokens[example][i] for i in keep.tolist()]]
    return replace(maps, weights=enc, mask=maps.mask[example : example + 1, at], tokens=tokens,
                   decoder=dec, cross=cross, decoder_mask=dmask, decoder_tokens=dec_tokens, notes=[])


def tensor_hash(named: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and raw bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(named):
        t = named[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b"")  # no copy: a buffer
    return digest.hexdigest()


def file_hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
