"""Safe file writing: atomic (never half-written), and always inside the chosen output folder."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from attnviz.errors import BadInput
from attnviz.maps import write_atomically

DEFAULT_DIR = Path("outputs")


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe stem made from the text (letters of any script kept), plus a short hash."""
    words = re.sub(r"[^\w]+", "-", text.strip().lower(), flags=re.UNICODE).strip("-_")
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:6]
    return f"{words[:limit].strip('-') or 'input'}-{digest}"


def inside(root: Path, name: str) -> Path:
    """``root/name``, refusing any name that would land outside ``root`` (../, absolute, links)."""
    root = root.resolve()
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        raise BadInput(f"refusing to write outside {root}: {name}")
    return target


def write_atomic(path: Path, data: bytes) -> Path:
    """Write to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    if not path.parent.is_dir():
        raise BadInput(f"cannot write {path}: folder {path.parent} does not exist")
    return write_atomically(path, lambda tmp: tmp.write_bytes(data))


def make_folder(out: Path, what: str = "--out") -> Path:
    """Create the output folder ``out`` and its parents; a file in the way is refused."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInput(f"{what} {out} is a file; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BadInput(f"cannot create folder {out}: {err.strerror or err}") from None
    return out


def check_writable(path: Path) -> None:
    """Fail before any work is done when the output cannot be written."""
    parent = Path(path).parent
    if not parent.is_dir():
        raise BadInput(f"cannot write {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise BadInput(f"cannot write {path}: folder {parent} is not writable")
    if Path(path).is_dir():
        raise BadInput(f"cannot write {path}: it is a folder")
