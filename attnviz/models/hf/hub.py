"""Where a Hugging Face model comes from: a local folder or the local cache (the hub only with ``online=True``),
and whether it is safe to load (safetensors only unless pickle is allowed; remote code only with a pinned revision).
Offline by default, for the call only (``hub_settings``).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from attnviz.errors import ModelNotFound, Unsafe


_PICKLE = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


@contextmanager
def hub_settings(online: bool) -> Iterator[None]:
    """The hub offline (unless ``online``), transformers quiet and without progress bars, for one call.

    Everything is put back in ``finally``: the environment, huggingface_hub's offline constant, the
    transformers log level and both libraries' progress-bar switches. ``HF_HUB_OFFLINE`` is read when
    huggingface_hub is imported, so it is set before transformers is first imported here.
    """
    env_before = os.environ.get("HF_HUB_OFFLINE")
    hub = sys.modules.get("huggingface_hub.constants")
    offline_before = hub.HF_HUB_OFFLINE if hub is not None else _env_offline()
    os.environ["HF_HUB_OFFLINE"] = "0" if online else "1"
    try:
        import huggingface_hub.constants as hub_constants

        hub_constants.HF_HUB_OFFLINE = not online
        with _quiet_transformers():
            yield
    finally:
        _put_env("HF_HUB_OFFLINE", env_before)
        if "huggingface_hub.constants" in sys.modules:
            sys.modules["huggingface_hub.constants"].HF_HUB_OFFLINE = offline_before


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Log level error and no progress bars: the CLI prints only its own lines ("some weights were not
    initialised" and download bars would be noise)."""
    from transformers.utils import logging as hf_logging

    hub_bars = importlib.import_module("huggingface_hub.utils.tqdm")
    states = getattr(hub_bars, "progress_bar_states", None)
    level, bars, hub_states = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(), dict(states or {})
    try:
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
        else:
            hf_logging.disable_progress_bar()
        if states is not None:  # transformers' switch flips the hub's too: put the hub's groups back as they were
            states.clear()
            states.update(hub_states)


def _env_offline() -> bool:
    """What huggingface_hub would read from the environment when imported."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in ("1", "ON", "YES", "TRUE")


def _put_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def resolve(spec: str, online: bool, revision: str | None) -> Path | str:
    """A local folder, or a hub id found in the local cache (or any hub id when online)."""
    try:
        path = Path(spec).expanduser()
        exists = path.exists()
    except (OSError, RuntimeError, ValueError) as err:  # a name too long, an unknown ~user, a NUL byte
        raise ModelNotFound(f"model path {_short(spec)} cannot be used: {getattr(err, 'strerror', None) or _one_line(err, 80)}") from None
    if exists:
        if not (path / "config.json").is_file():
            raise ModelNotFound(f"{spec} has no config.json; it is not a Hugging Face model folder")
        return path
    if _looks_like_path(spec):
        raise ModelNotFound(f"model path does not exist: {_short(spec)}")
    if online:
        return spec
    from huggingface_hub import try_to_load_from_cache

    # huggingface_hub reads HF_HUB_CACHE once, when first imported; read it again now.
    try:
        found = try_to_load_from_cache(spec, "config.json", cache_dir=os.environ.get("HF_HUB_CACHE"), revision=revision)
    except ValueError:  # not a valid hub id (HFValidationError)
        raise ModelNotFound(f"{_short(spec)!r} is neither a model folder nor a valid hub id") from None
    if isinstance(found, str):
        return Path(found).parent
    return ""


def _looks_like_path(spec: str) -> bool:
    """A hub id is ``name`` or ``org/name``; anything else with a separator is a path."""
    parts = spec.replace("\\", "/").split("/")
    return spec.startswith((".", "/", "~")) or len(parts) > 2 or any(p in ("", ".", "..") for p in parts)


def _short(spec: str, limit: int = 80) -> str:
    """A model name for a one-line message: a path of thousands of characters is cut in the middle."""
    return spec if len(spec) <= limit else f"{spec[:limit // 2]}...{spec[-limit // 2:]}"


def _one_line(err: BaseException, limit: int = 300) -> str:
    """A library's error message as one line: the CLI prints one line per error."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_safety(folder: Path | str, allow_pickle: bool, trust_remote_code: bool, revision: str | None) -> None:
    if isinstance(folder, Path):
        has_safe = any(folder.glob("*.safetensors"))
        pickled = [p.name for pat in _PICKLE for p in folder.glob(pat)]
        if pickled and not has_safe and not allow_pickle:
            raise Unsafe(f"{folder} has only pickle weights ({pickled[0]}); pass --allow-pickle to load them anyway")
        config = read_config(folder)
        if config.get("auto_map") and not trust_remote_code:
            raise Unsafe(f"{folder} needs remote code; pass --trust-remote-code together with --revision")
    if trust_remote_code and not revision:
        raise Unsafe("--trust-remote-code needs --revision pinning the code that will run")


def read_config(folder: Path) -> dict:
    """A folder's config.json as a JSON object; anything else (a list, JSON nested past Python's recursion
    limit, a broken file) is ModelNotFound naming the file."""
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        problem = "nested too deeply" if isinstance(err, RecursionError) else _one_line(err)
        raise ModelNotFound(f"cannot read {path}: {problem}") from None
    if not isinstance(config, dict):
        raise ModelNotFound(f"{path} is not a model config: a JSON object was expected, not {type(config).__name__}")
    return config
