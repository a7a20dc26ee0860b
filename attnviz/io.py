"""Every file the package writes goes through here: atomic (never half-written), created exclusively
(never through a planted link), and inside the chosen output folder."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Callable

from attnviz.errors import BadInput

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


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` beside ``path``, then a rename onto it: a failed write leaves no partial file.

    The temporary file is created exclusively with an unpredictable name (``mkstemp``), so a link planted
    in the folder is never written through; an existing special file (FIFO, device) at ``path`` is refused.
    """
    path = Path(path)
    if not path.name or path.is_dir():
        raise BadInput(f"cannot write {path}: it is a folder; give a file name")
    if not path.parent.is_dir():
        raise BadInput(f"cannot write {path}: the folder {path.parent} does not exist")
    if path.exists() and not path.is_symlink() and not stat.S_ISREG(path.stat().st_mode):
        raise BadInput(f"cannot write {path}: it is not a regular file")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".part", dir=path.parent)
    except OSError as err:
        raise BadInput(f"cannot write {path}: {err.strerror or err}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private (0600); a written file is as open() makes it
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise BadInput(f"cannot write {path}: {err.strerror or err}") from None
    except BaseException:  # a writer's own error type, or Ctrl-C: still no partial file
        tmp.unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: put it back at once
    os.umask(mask)
    return mask


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


def finite(value, path: str = "") -> tuple[object, list[str]]:
    """``value`` with every NaN or infinity replaced by None, and where each was (``a.b[2]``): JSON has no NaN,
    and a bare ``NaN`` token makes the whole file unreadable."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, [path or "value"]
    if isinstance(value, dict):
        pairs = [(k, finite(v, f"{path}.{k}" if path else str(k))) for k, v in value.items()]
        return {k: v for k, (v, _) in pairs}, [b for _, (_, bad) in pairs for b in bad]
    if isinstance(value, (list, tuple)):
        parts = [finite(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return [v for v, _ in parts], [b for _, bad in parts for b in bad]
    return value, []


def json_bytes(doc, **options) -> bytes:
    """Strict JSON (never a bare NaN) as UTF-8; ``doc`` must already be finite (see ``finite``)."""
    return json.dumps(doc, ensure_ascii=False, allow_nan=False, **options).encode("utf-8")
