"""Running a model for snapshots: record baselines, update them, and check a model against them.

The driver between a loaded model (capture, attribution) and the pure files (``store``, ``manifest``)
and comparison (``compare``) of the package. The CLI and the pytest plugin call these three functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from attnviz.errors import BadInput, BaselineError
from attnviz.recording import capture
from attnviz.snapshot.compare import Tolerance, compare
from attnviz.snapshot.manifest import SnapshotSettings, context_changes, describe, read_manifest
from attnviz.snapshot.result import CheckResult
from attnviz.snapshot.store import (MANIFEST, Baseline, baseline_path, how_to_regenerate, input_key, load_baseline,
                                    remove_baselines, trim, write_snapshot)


@dataclass
class RecordResult:
    folder: Path
    settings: SnapshotSettings  # as recorded in the manifest
    written: list[Path]  # one baseline per distinct input
    removed: list[str] = field(default_factory=list)  # keys of the old manifest's baselines no input uses now
    duplicates: int = 0  # repeated inputs, snapshotted once


def unique(texts: list[str]) -> tuple[list[str], int]:
    """The texts without repeats (first occurrence kept, by key), and how many repeats were dropped."""
    seen: dict[str, str] = {}
    for text in texts:
        seen.setdefault(input_key(text), text)
    return list(seen.values()), len(texts) - len(seen)


def current(loaded, texts: list[str], settings: SnapshotSettings) -> list[Baseline]:
    """Each input's attention (L, 1, H, s, s) and attribution scores (s,), cut to its real positions."""
    layers = list(settings.layers) if settings.layers is not None else None
    heads = list(settings.heads) if settings.heads is not None else None
    out: list[Baseline] = []
    for start in range(0, len(texts), settings.batch_size):
        chunk = texts[start : start + settings.batch_size]
        maps = capture(loaded, chunk, layers=layers, heads=heads, store_dtype=getattr(torch, settings.store_dtype))
        out.extend(Baseline(input_key(t), t, trim(maps, i)) for i, t in enumerate(chunk))
        if settings.methods:
            _add_attributions(loaded, chunk, settings, out[start:])
    return out


def _add_attributions(loaded, chunk: list[str], settings: SnapshotSettings, bases: list[Baseline]) -> None:
    """Every chosen method on one shared batch; scores cut to the real tokens like the attention."""
    from attnviz.attribution import attribute_many

    _, results = attribute_many(loaded, chunk, methods=list(settings.methods), target=settings.target,
                                reference=settings.reference)
    for attr in results:
        for i, base in enumerate(bases):
            keep = torch.nonzero(attr.mask[i] > 0).flatten()
            base.attributions[attr.method] = attr.scores[i, keep].detach().to("cpu", getattr(torch, settings.store_dtype))
            info = {"target": _item(attr.target, i), "prediction": _item(attr.prediction, i),
                    "probability": _item(attr.probability, i)}
            base.attr_info[attr.method] = {k: v for k, v in info.items() if v is not None}


def _item(value, i: int):
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    return value[i] if isinstance(value, (list, tuple)) else value


def record(loaded, texts: list[str], folder: Path, settings: SnapshotSettings, *, update: bool = False) -> RecordResult:
    """Write every input's baseline, then the manifest; an existing snapshot changes only with ``update``.

    Nothing is ever removed but, with ``update``, the baselines that the old manifest lists and no input
    uses now: other files in the folder (a model's weights, a maps file) are never touched.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"snapshot folder {folder} is a file")
    if (folder / MANIFEST).exists() and not update:
        raise BadInput(f"snapshots already exist in {folder}; rewrite them with --update")
    texts, dupes = unique(texts)
    if not texts:
        raise BadInput("no inputs to snapshot")
    owned = _owned_keys(folder) if update else []
    bases = current(loaded, texts, settings)
    written = write_snapshot(folder, bases, describe(loaded, settings, bases))
    keep = {b.key for b in bases}
    removed = remove_baselines(folder, [k for k in owned if k not in keep])
    return RecordResult(folder, settings, written, removed, dupes)


def _owned_keys(folder: Path) -> list[str]:
    """The keys the folder's manifest lists as its own; none without a sound manifest."""
    try:
        return [input_key(i["text"]) for i in read_manifest(folder)["inputs"]]
    except BaselineError:
        return []


def update(loaded, texts: list[str] | None, folder: Path) -> RecordResult:
    """Rewrite a snapshot from ``loaded`` with its recorded settings and (unless ``texts`` are given) inputs.

    What ``check`` names as the way to regenerate a snapshot, so it works where a check cannot: a missing
    or damaged manifest, or settings this model cannot satisfy, give way to the default settings.
    """
    try:
        saved = read_manifest(folder)
    except BaselineError:
        saved = None
    settings = SnapshotSettings.from_manifest(saved) if saved else SnapshotSettings()
    if settings.fit_problem(loaded.num_layers, loaded.num_heads):
        settings = SnapshotSettings()
    if texts is None:
        texts = [i["text"] for i in saved["inputs"]] if saved else []
    if not texts:
        raise BadInput("no inputs to snapshot: give --inputs FILE")
    return record(loaded, texts, folder, settings, update=True)


def _check_fits(settings: SnapshotSettings, loaded, folder: Path, regenerate: str) -> None:
    problem = settings.fit_problem(loaded.num_layers, loaded.num_heads)
    if problem:
        raise BaselineError(how_to_regenerate(f"snapshot manifest {Path(folder) / MANIFEST}: {problem}", regenerate))


def check(loaded, texts: list[str] | None, folder: Path, *, tolerance: Tolerance | None = None,
          regenerate: str = "", overrides: dict | None = None) -> CheckResult:
    """Recompute every input (default: the manifest's) with the recorded settings and compare it with its baseline.

    A missing folder, manifest or baseline, or a manifest the model cannot satisfy, is a BaselineError
    whose message ends with ``regenerate``. Tolerances: ``tolerance``, else the stored dtype's defaults
    with ``overrides`` (name -> value or None).
    """
    folder = Path(folder)
    saved = read_manifest(folder, regenerate)
    settings = SnapshotSettings.from_manifest(saved)
    _check_fits(settings, loaded, folder, regenerate)
    tol = tolerance or Tolerance.for_dtype(settings.store_dtype, **(overrides or {}))
    texts, _ = unique([i["text"] for i in saved["inputs"]] if texts is None else texts)
    if not texts:
        raise BadInput("no inputs to check")
    keys = [input_key(t) for t in texts]
    missing = [k for k in keys if not baseline_path(folder, k).is_file()]
    if missing:
        names = ", ".join(str(baseline_path(folder, k)) for k in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        counted = "1 input has" if len(missing) == 1 else f"{len(missing)} inputs have"
        raise BaselineError(how_to_regenerate(f"{counted} no baseline ({names}{more})", regenerate))
    bases = [load_baseline(baseline_path(folder, k), regenerate) for k in keys]
    now = current(loaded, texts, settings)
    results = [compare(b, c, tol) for b, c in zip(bases, now)]
    unused = sorted({input_key(i["text"]) for i in saved["inputs"]} - set(keys))
    passed = all(r.status == "ok" for r in results)
    context = context_changes(saved, describe(loaded, settings, now, hashes=not passed))
    return CheckResult(tol, results, missing, unused, context)
