"""Snapshot files: one baseline ``.safetensors`` file per input, plus ``manifest.json``, written together.

A baseline holds that input's attention, cut to its real (unpadded) positions, as an AttentionMaps of
batch 1 (tensors ``weights``, ``mask``, and for encoder-decoder models ``decoder``, ``cross``,
``decoder_mask``), plus one tensor ``attr.<method>`` (S,) per attribution method. Pure storage: nothing
here runs a model (see ``attnviz.snapshot.run``) or reads the manifest's content (``manifest``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from attnviz.errors import BadInput, BaselineError
from attnviz.io import make_folder, write_atomically
from attnviz.maps import AttentionMaps, contract_problem

SNAPSHOT_VERSION = 1
MANIFEST = "manifest.json"
SUFFIX = ".safetensors"
_ATTR = "attr."


@dataclass
class Baseline:
    """One input's snapshot: its attention (batch 1, real positions only) and attribution scores."""

    key: str  # file stem, from input_key(text)
    text: str  # the input as given
    maps: AttentionMaps
    attributions: dict[str, torch.Tensor] = field(default_factory=dict)  # method -> (S,) float
    attr_info: dict[str, dict] = field(default_factory=dict)  # method -> target, prediction, ...


def input_key(text: str) -> str:
    """A file stem that is safe on every file system: a readable ASCII prefix and a content hash.

    Not ``io.slug``: that keeps letters of every script, and existing snapshot folders are named by this.
    """
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:32].strip("-")
    return f"{words or 'input'}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:10]}"


def baseline_path(folder: Path, key: str) -> Path:
    """``folder/<key>.safetensors``; a key that input_key could not have made is refused."""
    if not re.fullmatch(r"[a-z0-9-]+", key):
        raise BadInput(f"not a snapshot key: {key!r}")
    return Path(folder) / f"{key}{SUFFIX}"


def how_to_regenerate(problem: str, regenerate: str) -> str:
    """The problem, then the command that rewrites the snapshot (when one is known)."""
    return f"{problem}; regenerate it with: {regenerate}" if regenerate else problem


def save_baseline(folder: Path, base: Baseline) -> Path:
    """Write ``folder/<key>.safetensors`` atomically; a full disk is a BadInput (exit 2), never a partial file."""
    from safetensors.torch import save

    tensors, maps_meta = base.maps.to_parts()
    tensors.update({_ATTR + k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
                    for k, v in base.attributions.items()})
    snap = {"version": SNAPSHOT_VERSION, "key": base.key, "text": base.text, "attr_info": base.attr_info}
    # Serialised in memory, then written by Python: an I/O error is an OSError (safetensors' own writer
    # raises its SafetensorError for a full disk, which no caller could tell from a bug).
    data = save(tensors, metadata={"attnviz": maps_meta, "snapshot": json.dumps(snap, ensure_ascii=False)})
    return write_atomically(baseline_path(folder, base.key), lambda tmp: tmp.write_bytes(data))


def load_baseline(path: Path, regenerate: str = "") -> Baseline:
    """Read one baseline; an empty, truncated, foreign or inconsistent file is a BaselineError naming it.

    NaN and infinities are kept: a check reports them as drift, not as a corrupt file.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise BaselineError(how_to_regenerate(f"baseline {path} is missing", regenerate))
    if path.stat().st_size == 0:
        raise BaselineError(how_to_regenerate(f"baseline {path} is corrupt (empty file)", regenerate))
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        maps, snap = AttentionMaps.from_parts(tensors, meta["attnviz"]), json.loads(meta["snapshot"])
        base = Baseline(snap["key"], snap["text"], maps, {k[len(_ATTR):]: v for k, v in tensors.items()
                                                          if k.startswith(_ATTR)}, snap.get("attr_info", {}))
        problem = contract_problem(replace(maps, **{name: torch.nan_to_num(t, 0.0, 0.0, 0.0) for name, t in
                                                    (("weights", maps.weights), ("decoder", maps.decoder),
                                                     ("cross", maps.cross)) if t is not None}))
    except Exception as err:  # safetensors raises its own SafetensorError for a truncated header
        why = "not a safetensors file" if "header" in str(err).lower() else f"{type(err).__name__}"
        raise BaselineError(how_to_regenerate(f"baseline {path} is corrupt ({why})", regenerate)) from None
    if problem:
        raise BaselineError(how_to_regenerate(f"baseline {path} is corrupt ({problem})", regenerate))
    return base


def write_snapshot(folder: Path, bases: list[Baseline], manifest: dict) -> list[Path]:
    """Every baseline, then ``manifest.json`` last, all or nothing: the paths of the baselines written.

    Each file is first written whole into a temporary folder inside ``folder``, then renamed into place,
    the manifest last. A failed write (a full disk, a file-size limit) leaves ``folder`` as it was, and
    removes it again if this call created it: a folder never holds new baselines without their manifest.
    """
    folder = Path(folder)
    created = not folder.exists()
    make_folder(folder, "snapshot folder")
    try:
        stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
    except OSError as err:
        raise BadInput(f"cannot write in {folder}: {err.strerror or err}") from None
    try:
        staged = [save_baseline(stage, b) for b in bases]
        text = json.dumps({"version": SNAPSHOT_VERSION, **manifest}, indent=2, ensure_ascii=False) + "\n"
        staged.append(write_atomically(stage / MANIFEST, lambda tmp: tmp.write_text(text, encoding="utf-8")))
        for path in staged:  # renames within one file system: they need no space
            os.replace(path, folder / path.name)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    shutil.rmtree(stage, ignore_errors=True)
    return [folder / p.name for p in staged[:-1]]


def remove_baselines(folder: Path, keys: list[str]) -> list[str]:
    """Delete the baselines of ``keys`` (the manifest's own, never another file): the keys removed."""
    removed = []
    for key in keys:
        path = baseline_path(folder, key)
        if path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(key)
    return removed


def _positions(keep: torch.Tensor) -> slice | torch.Tensor:
    """A slice when the real positions are one run (left or right padding): a view, not a gather."""
    first, n = (int(keep[0]), keep.numel()) if keep.numel() else (0, 0)
    return slice(first, first + n) if n and int(keep[-1]) == first + n - 1 else keep


def _cut(stack: torch.Tensor, example: int, rows, cols) -> torch.Tensor:
    one = stack[:, example : example + 1]  # (L, 1, H, Q, K)
    rows_cut = one[..., rows, :]
    return rows_cut[..., cols]  # (L, 1, H, q, k)


def trim(maps: AttentionMaps, example: int) -> AttentionMaps:
    """One example of a padded batch, cut to its real positions, as a baseline holds it: (L, 1, H, s, s)."""
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
