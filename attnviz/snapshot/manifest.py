"""``manifest.json`` of a snapshot folder: its inputs, its capture settings, and the context a check shows.

Context: the model id, hashes of the weights (in memory and on disk) and of the tokenizer, the config,
versions, device and dtype; a check shows what changed beside its verdict, never as the verdict. A manifest
is read back with every key checked: a hand-edited one is a BaselineError (exit 3) that names the key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path

import torch

from attnviz.errors import BadInput, BaselineError
from attnviz.snapshot.result import short
from attnviz.snapshot.store import MANIFEST, SNAPSHOT_VERSION, Baseline, how_to_regenerate

WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth")
CONTEXT = ("model", "weights_hash", "tokenizer_hash", "kind", "backend", "device", "dtype", "store_dtype",
           "attnviz", "torch", "transformers")


def _shown(value) -> str:
    return short(json.dumps(value, ensure_ascii=False, default=str), 40)


def _indices(value, what: str) -> str | None:
    if value is None:
        return None
    if (not isinstance(value, (list, tuple)) or not value or len(set(value)) != len(value)
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
        return f"must be null (all) or a list of distinct {what} numbers >= 0, not {_shown(value)}"
    return None


def _methods(value) -> str | None:
    if not isinstance(value, (list, tuple)) or not all(isinstance(m, str) for m in value):
        return f"must be a list of attribution method names, not {_shown(value)}"
    if value:
        from attnviz.attribution import METHODS

        unknown = [m for m in value if m not in METHODS.names()]
        if unknown:
            return f"names an unknown attribution method {unknown[0]!r}; known: {', '.join(METHODS.names())}"
    return None


_PROBLEM = {  # field -> what is wrong with a value of it (None: nothing)
    "layers": lambda v: _indices(v, "layer"),
    "heads": lambda v: _indices(v, "head"),
    "store_dtype": lambda v: None if v in ("float32", "float16") else f"must be float32 or float16, not {_shown(v)}",
    "methods": _methods,
    "batch_size": lambda v: (None if isinstance(v, int) and not isinstance(v, bool) and v >= 1
                             else f"must be a whole number >= 1, not {_shown(v)}"),
    "target": lambda v: None if v is None or isinstance(v, str) else f"must be a label or null, not {_shown(v)}",
    "reference": lambda v: None if v is None or isinstance(v, str) else f"must be a text or null, not {_shown(v)}",
}


@dataclass(frozen=True)
class SnapshotSettings:
    """How baselines are captured; kept in the manifest's ``capture`` and reused by every check."""

    layers: tuple[int, ...] | None = None  # model layers to keep (None: all)
    heads: tuple[int, ...] | None = None  # heads to keep (None: all)
    store_dtype: str = "float32"  # float32 or float16: what the baselines hold
    methods: tuple[str, ...] = ()  # attribution methods whose scores are kept too
    batch_size: int = 32  # inputs per forward pass; padding does not change the weights of real tokens
    target: str | None = None  # attribution target label (default: the model's own prediction)
    reference: str | None = None  # attribution reference text (sentence encoders are explained by similarity)

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (list, range)):  # from JSON or a caller: kept as tuples (hashable, frozen)
                object.__setattr__(self, f.name, value := tuple(value))
            problem = _PROBLEM[f.name](value)
            if problem:
                raise BadInput(f"{f.name.replace('_', ' ')} {problem}")

    @classmethod
    def from_manifest(cls, manifest: dict) -> "SnapshotSettings":
        """The settings of a manifest that ``read_manifest`` checked."""
        return cls(**{f.name: manifest["capture"][f.name] for f in fields(cls)})

    def fit_problem(self, num_layers: int, num_heads: int) -> str | None:
        """What of these settings the model cannot give (a layer or head it does not have), or None."""
        for name, chosen, size in (("layers", self.layers, num_layers), ("heads", self.heads, num_heads)):
            bad = [v for v in chosen or () if size and v >= size]
            if bad:
                return f"capture.{name} names {name[:-1]} {bad[0]}, but the model has {size} {name}"
        return None


def manifest_problem(data) -> str | None:
    """The first key of a parsed manifest that is missing or wrong, with what is wrong; None if it is sound."""
    if not isinstance(data, dict):
        return f"must be a JSON object, not {_shown(data)}"
    version = data.get("version")
    if type(version) is not int or version != SNAPSHOT_VERSION:
        return f"version {_shown(version)} is not the snapshot version this attnviz reads ({SNAPSHOT_VERSION})"
    for key, kind in (("model", str), ("inputs", list), ("capture", dict)):
        if key not in data:
            return f"{key} is missing"
        if not isinstance(data[key], kind) or (kind is str and not data[key].strip()):
            return f"{key} must be {_KINDS[key]}, not {_shown(data[key])}"
    if not data["inputs"]:
        return "inputs is empty: a snapshot checks at least one input"
    for i, item in enumerate(data["inputs"]):
        if not isinstance(item, dict):
            return f"inputs[{i}] must be an object with a text, not {_shown(item)}"
        if "text" not in item:
            return f"inputs[{i}].text is missing"
        if not isinstance(item["text"], str) or not item["text"].strip():
            return f"inputs[{i}].text must be a non-empty string, not {_shown(item['text'])}"
    capture = data["capture"]
    for name, problem in _PROBLEM.items():
        if name not in capture:
            return f"capture.{name} is missing"
        if problem(capture[name]):
            return f"capture.{name} {problem(capture[name])}"
    return None


_KINDS = {"model": "a model name or folder", "inputs": 'a list of {"text": ...} objects',
          "capture": "an object of capture settings"}


def read_manifest(folder: Path, regenerate: str = "") -> dict:
    """The checked manifest of ``folder``; missing, unreadable or wrong, a BaselineError naming the key."""
    path = Path(folder) / MANIFEST
    if not Path(folder).is_dir():
        raise BaselineError(how_to_regenerate(f"no snapshot folder {folder}", regenerate))
    if not path.is_file():
        raise BaselineError(how_to_regenerate(f"no snapshot manifest {path}", regenerate))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise BaselineError(how_to_regenerate(f"snapshot manifest {path} is corrupt ({type(err).__name__})",
                                              regenerate)) from None
    problem = manifest_problem(data)
    if problem:
        raise BaselineError(how_to_regenerate(f"snapshot manifest {path}: {problem}", regenerate))
    return data


def recorded_model(folder: Path, regenerate: str = "", *, required: bool = True) -> str | None:
    """The model the snapshot in ``folder`` was recorded with; None without a sound manifest unless ``required``."""
    try:
        return read_manifest(folder, regenerate)["model"]
    except BaselineError:
        if required:
            raise
        return None


def describe(loaded, settings: SnapshotSettings, bases: list[Baseline], *, hashes: bool = True) -> dict:
    """The manifest of ``bases`` captured from ``loaded`` with ``settings`` (without its version).

    ``hashes``: hash the weights (in memory and the files on disk) and the tokenizer; a check that
    passes skips them, as they cost about a third of a capture of 100 inputs on MiniLM.
    """
    model = loaded.model
    param = next(model.parameters())
    where = getattr(model, "name_or_path", "") or loaded.source  # HF models remember the folder they came from
    folder = Path(where) if where and hashes else None
    files = [p for pattern in WEIGHT_FILES for p in folder.glob(pattern)] if folder and folder.is_dir() else []
    cfg = getattr(model, "config", None)
    return {
        "model": loaded.name, "kind": loaded.kind, "task": loaded.task, "architecture": loaded.architecture,
        "backend": loaded.backend,
        "weights_hash": tensor_hash(model.state_dict()) if hashes else None,
        "weight_files_hash": file_hash(files) if files else None,
        "tokenizer_hash": tokenizer_hash(loaded) if hashes else None,
        "config": json.loads(json.dumps(cfg.to_dict() if hasattr(cfg, "to_dict") else {}, default=str)),
        "capture": asdict(settings),
        "store_dtype": settings.store_dtype, "dtype": str(param.dtype).replace("torch.", ""),
        "device": str(param.device),
        "attnviz": _version("attnviz"), "torch": torch.__version__, "transformers": _version("transformers"),
        "inputs": [{"key": b.key, "text": b.text} for b in bases],
    }


def context_changes(base: dict, cur: dict) -> list[tuple[str, str, str]]:
    """(field, baseline, current) of the CONTEXT fields that differ; a field left None (not hashed) is skipped."""
    return [(k, str(base.get(k, "")), str(cur[k])) for k in CONTEXT
            if cur.get(k) is not None and base.get(k) != cur[k]]


def tensor_hash(named: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and raw bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(named):
        t = named[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b"")  # no copy: a buffer
    return digest.hexdigest()


def file_hash(paths: list[Path]) -> str:
    """sha256 over the names and bytes of ``paths``, in name order, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def tokenizer_hash(loaded) -> str | None:
    """sha256 of what decides the tokens: a fast tokenizer's whole pipeline, else its vocabulary."""
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


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
