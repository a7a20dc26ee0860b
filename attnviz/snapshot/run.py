"""Running a model for snapshots: record baselines, and check a model against them.

The thin driver between a loaded model (capture, attribution) and the pure snapshot files and
comparison in ``attnviz.snapshot`` and ``attnviz.snapshot.compare``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import torch

from attnviz.recording import capture
from attnviz.errors import BadInput
from attnviz.io import make_folder
from attnviz.snapshot.store import (Baseline, BaselineError, Tolerance, baseline_path, file_hash, input_key, load_baseline,
                              read_manifest, save_baseline, stored_keys, tensor_hash, trim, write_manifest)
from attnviz.snapshot.compare import CheckResult, compare, context_changes

WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth")


@dataclass(frozen=True)
class SnapshotSettings:
    layers: tuple[int, ...] | None = None  # model layers to keep (None: all)
    heads: tuple[int, ...] | None = None  # heads to keep (None: all)
    store_dtype: str = "float32"  # float32 or float16: what the baselines hold
    methods: tuple[str, ...] = ()  # attribution methods whose scores are kept too
    batch_size: int = 32  # inputs per forward pass; padding does not change the weights of real tokens
    target: str | None = None  # attribution target label (default: the model's own prediction)
    reference: str | None = None  # attribution reference text (sentence encoders are explained by similarity)

    def __post_init__(self):
        if self.store_dtype not in ("float32", "float16"):
            raise BadInput(f"store dtype must be float32 or float16, not {self.store_dtype!r}")
        if self.batch_size < 1:
            raise BadInput(f"batch size must be >= 1, not {self.batch_size}")

    @classmethod
    def from_manifest(cls, manifest: dict) -> "SnapshotSettings":
        cap = manifest.get("capture", {})
        as_tuple = lambda v: tuple(v) if v is not None else None  # noqa: E731
        return cls(as_tuple(cap.get("layers")), as_tuple(cap.get("heads")), cap.get("store_dtype", "float32"),
                   tuple(cap.get("methods", ())), int(cap.get("batch_size", 32)), cap.get("target"),
                   cap.get("reference"))


@dataclass
class RecordResult:
    folder: Path
    written: list[Path]
    removed: list[str] = field(default_factory=list)  # baselines that no input used any more
    duplicates: int = 0  # repeated inputs, snapshotted once


def unique(texts: list[str]) -> tuple[list[str], int]:
    seen: dict[str, str] = {}
    for text in texts:
        seen.setdefault(input_key(text), text)
    return list(seen.values()), len(texts) - len(seen)


def current(loaded, texts: list[str], settings: SnapshotSettings) -> list[Baseline]:
    """Each input's attention (and attribution scores), cut to its real positions."""
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


def manifest(loaded, settings: SnapshotSettings, bases: list[Baseline], *, hashes: bool = True) -> dict:
    """What a check shows as context: which model, weights, tokenizer, versions and device.

    ``hashes``: hash the weights (in memory and the files on disk) and the tokenizer; a check that
    passes skips them, as they cost about a third of a capture of 100 inputs on MiniLM.
    """
    model = loaded.model
    param = next(model.parameters())
    where = getattr(model, "name_or_path", "") or loaded.source  # HF models remember the folder they came from
    folder = Path(where) if where and hashes else None
    files = [p for pattern in WEIGHT_FILES for p in folder.glob(pattern)] if folder and folder.is_dir() else []
    return {
        "model": loaded.name, "kind": loaded.kind, "task": loaded.task, "architecture": loaded.architecture,
        "backend": loaded.backend,
        "weights_hash": tensor_hash(model.state_dict()) if hashes else None,
        "weight_files_hash": file_hash(files) if files else None,
        "tokenizer_hash": tokenizer_hash(loaded) if hashes else None,
        "config": _config(model),
        "capture": asdict(settings),
        "store_dtype": settings.store_dtype, "dtype": str(param.dtype).replace("torch.", ""),
        "device": str(param.device),
        "attnviz": _version("attnviz"), "torch": torch.__version__, "transformers": _version("transformers"),
        "inputs": [{"key": b.key, "text": b.text} for b in bases],
    }


def tokenizer_hash(loaded) -> str | None:
    import hashlib

    tok = loaded.tokenizer if loaded.tokenizer is not None else loaded.processor
    if tok is None:
        return None
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):  # a fast tokenizer: its whole pipeline, serialised
        state = json.loads(backend.to_str())
        state.pop("truncation", None), state.pop("padding", None)  # set by each call, not part of the tokenizer
        blob = type(tok).__name__ + json.dumps(state, sort_keys=True, ensure_ascii=False)
    elif hasattr(tok, "get_vocab"):
        blob = json.dumps([type(tok).__name__, sorted(tok.get_vocab().items())], ensure_ascii=False)
    else:
        blob = json.dumps(tok.to_dict() if hasattr(tok, "to_dict") else repr(tok), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _config(model) -> dict:
    cfg = getattr(model, "config", None)
    data = cfg.to_dict() if hasattr(cfg, "to_dict") else {}
    return json.loads(json.dumps(data, default=str))


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def record(loaded, texts: list[str], folder: Path, settings: SnapshotSettings, *, update: bool = False) -> RecordResult:
    """Write every input's baseline and the manifest; existing baselines change only with ``update``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"snapshot folder {folder} is a file")
    if (folder / "manifest.json").exists() and not update:
        raise BadInput(f"snapshots already exist in {folder}; rewrite them with --update")
    texts, dupes = unique(texts)
    bases = current(loaded, texts, settings)
    make_folder(folder, "snapshot folder")
    written = [save_baseline(folder, b) for b in bases]
    keep = {b.key for b in bases}
    removed = [k for k in stored_keys(folder) if k not in keep]
    for key in removed:
        baseline_path(folder, key).unlink(missing_ok=True)
    write_manifest(folder, manifest(loaded, settings, bases))
    return RecordResult(folder, written, removed, dupes)


def check(loaded, texts: list[str] | None, folder: Path, *, tolerance: Tolerance | None = None,
          regenerate: str = "", overrides: dict | None = None) -> CheckResult:
    """Recompute every input with the manifest's capture settings and compare it with its baseline."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BaselineError(f"no snapshot folder {folder}" + (f"; create it with: {regenerate}" if regenerate else ""))
    saved = read_manifest(folder, regenerate)
    settings = SnapshotSettings.from_manifest(saved)
    if texts is None:
        texts = [i["text"] for i in saved["inputs"]]
    texts, _ = unique(texts)
    keys, stored = [input_key(t) for t in texts], set(stored_keys(folder))
    missing = [k for k in keys if k not in stored]
    if missing:
        names = ", ".join(str(baseline_path(folder, k)) for k in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        counted = "1 input has" if len(missing) == 1 else f"{len(missing)} inputs have"
        raise BaselineError(f"{counted} no baseline ({names}{more})"
                            + (f"; regenerate with: {regenerate}" if regenerate else ""))
    bases = [load_baseline(baseline_path(folder, k), regenerate) for k in keys]
    tol = tolerance or Tolerance.for_dtype(settings.store_dtype, **(overrides or {}))
    now = current(loaded, texts, settings)
    results = [compare(b, c, tol) for b, c in zip(bases, now)]
    unused = sorted(stored - set(keys))
    ok = all(r.status == "ok" for r in results)
    context = context_changes(saved, manifest(loaded, settings, now, hashes=not ok))
    return CheckResult(tol, results, missing, unused, context)
