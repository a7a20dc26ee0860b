"""A batch report's output folder: a local path, written through ``attnviz.io`` like every other file the
package writes, or an fsspec URL (``file://``, ``memory://``, ``s3://`` with s3fs, ...) that Ray actors on
nodes without a shared disk write their items to. Both take names relative to the folder (``items/x/a.png``)
and refuse any that would land outside it.

A URL's files are written whole or not at all: to a temporary name beside the file (``.<name>.<random>.part``,
never a name attnviz did not pick), then ``fs.mv`` onto the final name, a rename on local disks and a
server-side copy on object stores, where an object is visible only once complete. The temporary file is
removed when the write fails; nothing else is ever deleted. fsspec is imported only for a URL.
"""

from __future__ import annotations

import os
import posixpath
import re
import secrets
from pathlib import Path
from typing import Iterable, Iterator

from attnviz.errors import BadInput
from attnviz.io import inside, make_folder, write_atomic

EXTRA = "pip install 'attnviz[urls]'"  # fsspec
URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
READ_CHUNK = 256  # item.json files fetched per request on resume (fs.cat fetches a list concurrently where it can)


def is_url(out) -> bool:
    return isinstance(out, str) and URL.match(out) is not None


def open_out(out: Path | str) -> LocalOut | UrlOut:
    """The output folder ``out``: a URL's file system is set up (and refused with its missing package named)
    here, before any model loads; a local folder is only created by ``prepare``."""
    return UrlOut.open(out) if is_url(out) else LocalOut(Path(out))


class LocalOut:
    """A folder on this machine (or a shared file system every node mounts at the same place)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.spec = str(self.root.resolve())  # what an actor on another process opens

    def prepare(self) -> None:
        make_folder(make_folder(self.root) / "items")

    def folder(self, name: str) -> Path:
        """The folder ``name``, created inside the output folder."""
        path = inside(self.root, name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, name: str, data: bytes) -> Path:
        parent, base = posixpath.split(name)
        # the folder is resolved inside the root; the file itself is replaced by the rename, never followed
        return write_atomic((inside(self.root, parent) if parent else self.root) / base, data)

    def existing(self, names: Iterable[str]) -> set[str]:
        """The names that are regular files inside the folder (a link out of it or a bad name is absent)."""
        return {n for n in names if self._file(n) is not None}

    def read_all(self, names: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """(name, contents) of each name that is a readable file inside the folder."""
        for name in names:
            path = self._file(name)
            try:
                data = path.read_bytes() if path is not None else None
            except OSError:
                data = None
            if data is not None:
                yield name, data

    def _file(self, name: str) -> Path | None:
        try:
            path = inside(self.root, name)
            return path if path.is_file() else None
        except (BadInput, OSError, ValueError):
            return None


class UrlOut:
    """A folder given as an fsspec URL; the file system comes from the URL (credentials from its usual
    environment variables or config files, e.g. s3fs's)."""

    def __init__(self, url: str, fs, root: str):
        self.spec, self.fs, self.root = url, fs, root.rstrip("/")
        self.local = "file" in _protocols(fs)  # links on a local disk could lead out of the folder: resolved

    @classmethod
    def open(cls, url: str) -> UrlOut:
        protocol = URL.match(url).group(1)
        try:
            from fsspec.core import url_to_fs
        except ImportError:
            raise BadInput(f"--out {url} is a URL, and URLs need fsspec, which is not installed: {EXTRA}") from None
        try:
            fs, root = url_to_fs(url)
        except ImportError as err:  # a known protocol whose package is missing: fsspec names it (s3 -> s3fs)
            package = _package(protocol)
            raise BadInput(f"--out {url}: {protocol}:// needs {package}, which is not installed: "
                           f"pip install {package}" if package else f"--out {url}: {err}") from None
        except ValueError as err:
            raise BadInput(f"--out {url}: no file system is known for {protocol}:// ({err}); give a folder or "
                           "a URL such as file:///shared/out or s3://bucket/out") from None
        except Exception as err:  # noqa: BLE001  (a backend's own error: bad host, bad options)
            raise BadInput(f"--out {url}: {type(err).__name__}: {err}") from None
        if not root.strip("/"):
            raise BadInput(f"--out {url} names no folder; add one, e.g. {protocol}://bucket/report")
        return cls(url, fs, root)

    def prepare(self) -> None:
        try:
            if self.fs.isfile(self.root):
                raise BadInput(f"--out {self.spec} is a file; give a folder")
            self.fs.makedirs(self._full("items"), exist_ok=True)
        except OSError as err:
            raise BadInput(f"cannot create {self.spec}: {err}") from None

    def folder(self, name: str) -> None:
        """Create the folder ``name`` (a no-op on object stores); the URL's files are written here, not by painters."""
        self.fs.makedirs(self._full(name), exist_ok=True)

    def write(self, name: str, data: bytes) -> str:
        full = self._full(name)
        parent, base = posixpath.split(full)
        if self.local and os.path.isdir(full):  # a move onto a folder would land inside it
            raise BadInput(f"cannot write {self.fs.unstrip_protocol(full)}: it is a folder")
        tmp = f"{parent}/.{base[:100]}.{secrets.token_hex(8)}.part"
        try:
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, full)
        except BaseException as err:
            try:
                self.fs.rm_file(tmp)
            except Exception:  # noqa: BLE001  (never written, or already moved)
                pass
            if isinstance(err, OSError):
                raise BadInput(f"cannot write {self.fs.unstrip_protocol(full)}: {err}") from None
            raise
        return self.fs.unstrip_protocol(full)

    def existing(self, names: Iterable[str]) -> set[str]:
        """The names that are files in the folder, from one listing (one request per thousand on object stores)."""
        names = set(names)
        try:
            present = {p[len(self.root) + 1:] for p in self.fs.find(self.root)}
        except (FileNotFoundError, OSError):
            return set()
        return {n for n in names & present if self._ok(n)}

    def read_all(self, names: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        names = [n for n in names if self._ok(n)]
        for k in range(0, len(names), READ_CHUNK):
            chunk = {self._full(n): n for n in names[k:k + READ_CHUNK]}
            try:
                found = self.fs.cat(list(chunk), on_error="omit")
            except (FileNotFoundError, OSError):
                continue
            for full, data in found.items():
                name = chunk.get(full) or chunk.get(self.fs._strip_protocol(full))
                if name is not None and isinstance(data, bytes):
                    yield name, data

    def _ok(self, name: str) -> bool:
        try:
            self._full(name)
            return True
        except BadInput:
            return False

    def _full(self, name: str) -> str:
        """``root/name``, refusing a name that would leave the folder (absolute, ``..``, a link on a local disk)."""
        parts = name.split("/")
        if not name or "\\" in name or any(p in ("", ".", "..") for p in parts):
            raise BadInput(f"refusing to write outside {self.spec}: {name}")
        full = f"{self.root}/{name}"
        if self.local:
            real_root = os.path.realpath(self.root)
            real = os.path.realpath(posixpath.dirname(full))
            if real != real_root and not real.startswith(real_root + os.sep):
                raise BadInput(f"refusing to write outside {self.spec}: {name}")
        return full


def _protocols(fs) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _package(protocol: str) -> str | None:
    """The package that provides ``protocol`` in fsspec's table (``s3fs.S3FileSystem`` -> s3fs)."""
    from fsspec.registry import known_implementations

    spec = known_implementations.get(protocol) or {}
    return spec.get("class", "").split(".")[0] or None

