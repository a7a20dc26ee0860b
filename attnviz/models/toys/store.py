"""A toy's weights file: one safetensors file whose metadata holds everything else needed to load it.

Metadata keys (JSON strings): ``config`` (ToyConfig fields), ``tokenizer`` (CharTokenizer.to_dict or
null), ``labels``, ``task``, ``description``, ``accuracy`` (e.g. "99.2%"), ``seed``, ``steps``, and
``checks`` (task-specific measurements such as the induction-head score).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from attnviz.errors import ModelNotFound
from attnviz.io import write_atomically
from attnviz.models.toys.chars import CharTokenizer
from attnviz.models.toys.toy import ToyConfig, ToyTransformer, build_toy

WEIGHTS = Path(__file__).parent / "weights"


def save_toy(path: str | os.PathLike, model: ToyTransformer, meta: dict) -> Path:
    """Write atomically (a temporary file, then a rename); ``meta`` values are JSON-encoded."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    info = {"config": model.config.to_dict(), **meta}

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp), metadata={k: json.dumps(v, ensure_ascii=False) for k, v in info.items()})
        canonical(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # safetensors creates the file private; give it the usual mode

    return write_atomically(path, write)


def canonical(path: Path) -> None:
    """Rewrites the header with sorted keys: safetensors writes metadata in hash order, which changes
    from process to process, so the same weights would not give the same file bytes."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.dumps(json.loads(raw[8:8 + n]), ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the data stays 8-byte aligned, as the format asks
    path.write_bytes(struct.pack("<Q", len(head)) + head + raw[8 + n:])


def read_meta(path: str | os.PathLike) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
    except Exception as err:  # a truncated or foreign file: say which, never a traceback
        raise ModelNotFound(f"{path} is not a toy weights file ({type(err).__name__})") from None


def load_toy(path: str | os.PathLike) -> tuple[ToyTransformer, CharTokenizer | None, dict]:
    """(model in eval mode, tokenizer or None, metadata) from a weights file."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelNotFound(f"toy weights {path.name} are missing; train them with `attnviz toy train`")
    meta = read_meta(path)
    model = build_toy(ToyConfig.from_dict(meta["config"]))
    model.load_state_dict(load_file(str(path)))
    tok = CharTokenizer.from_dict(meta["tokenizer"]) if meta.get("tokenizer") else None
    return model.eval(), tok, meta


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"
