"""Batch inputs: a text file (one input per line), JSONL, CSV, or a folder of images.

Every input becomes an ``Item``; a bad one (empty line, broken JSON row) carries its ``error`` instead of
aborting the run, so that the batch reports and skips it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from attnviz.errors import BadInput


@dataclass(frozen=True)
class Item:
    id: str  # from the input's `id` field, else its line number (or file name for images)
    text: str | None = None  # the text to run (None for images)
    image: Path | None = None  # the image file to run (None for texts)
    target: str | None = None  # the expected label, from `label` or `target`
    reference: str | None = None  # a reference output (seq2seq), kept for the summary
    error: str | None = None  # why this input cannot run; the batch skips it


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as written on the command line: K of K/N
    count: int  # N of K/N

    @classmethod
    def parse(cls, text: str | None) -> "Shard":
        if not text:
            return cls(1, 1)
        try:
            k, n = (int(p) for p in text.split("/"))
        except ValueError:
            raise BadInput(f"cannot read --shard {text!r}; write K/N, e.g. 2/8") from None
        if not (n >= 1 and 1 <= k <= n):
            raise BadInput(f"--shard {text}: K must be between 1 and N")
        return cls(k, n)

    def keeps(self, position: int) -> bool:
        # Round-robin rather than contiguous ranges: shards stay balanced when lengths drift along a file.
        return position % self.count == self.index - 1


def read_items(source: Path, *, limit: int | None = None, shard: Shard = Shard(1, 1)) -> list[Item]:
    """All inputs of ``source`` that belong to ``shard``, at most ``limit`` of them."""
    from attnviz.images import SUFFIXES

    source = Path(source)
    if limit is not None and limit < 1:
        raise BadInput("--limit must be at least 1")
    if source.is_dir():
        items = _images(source)
    elif not source.is_file():
        raise BadInput(f"no such file or folder: {source}")
    elif source.suffix.lower() in SUFFIXES:  # one image file, as `cam` takes it
        items = [Item(source.name, image=source)]
    elif source.suffix.lower() == ".jsonl":
        items = _jsonl(_lines(source))
    elif source.suffix.lower() == ".csv":
        items = _csv(source)
    else:
        items = [_text_item(str(i), line) for i, line in enumerate(_lines(source), 1)]
    if not items:
        raise BadInput(f"{source} holds no inputs")
    items = _unique([it for pos, it in enumerate(items) if shard.keeps(pos)])
    return items[:limit] if limit else items


def _read(path: Path) -> str:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # newline="": line ends reach us as written
            return f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise BadInput(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from None


def split_records(text: str) -> list[str]:
    """One record per line, split at \\n (and \\r\\n) only: U+2028, U+0085, form feeds and the other breaks
    that ``str.splitlines`` also splits at are text inside a record. Trailing blank lines are no inputs."""
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _lines(path: Path) -> list[str]:
    return split_records(_read(path))


def _text_item(default_id: str, text, *, id=None, target=None, reference=None) -> Item:
    ident = str(id).strip() if id not in (None, "") else default_id
    extra = {"target": _opt(target), "reference": _opt(reference)}
    if not isinstance(text, str) or not text.strip():
        return Item(ident, text if isinstance(text, str) else None, error="empty text", **extra)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # JSON's \\ud800 escapes decode to a lone surrogate: no text can hold it
        return Item(ident, None, error="the text holds a lone surrogate (not valid Unicode)", **extra)
    return Item(ident, text, **extra)


def _opt(value) -> str | None:
    return None if value in (None, "") else str(value)


def _jsonl(lines: list[str]) -> list[Item]:
    items = []
    for n, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not an object")
        except ValueError as err:
            items.append(Item(str(n), error=f"line {n} is not a JSON object ({err})"))
            continue
        items.append(_text_item(str(n), row.get("text"), id=row.get("id"),
                                target=row.get("label", row.get("target")), reference=row.get("reference")))
    return items


def _csv(path: Path) -> list[Item]:
    rows = list(csv.DictReader(io.StringIO(_read(path), newline="")))  # the csv module splits records itself
    if rows and "text" not in rows[0]:
        raise BadInput(f"{path} has no `text` column; columns: {', '.join(rows[0])}")
    return [_text_item(str(n), row.get("text"), id=row.get("id"), target=row.get("label") or row.get("target"),
                       reference=row.get("reference")) for n, row in enumerate(rows, 1)]


def _images(folder: Path) -> list[Item]:
    from attnviz.images import find_images

    files = find_images([folder])  # masks (<stem>.mask.png) are skipped
    return [Item(p.name, image=p) for p in files]


def _unique(items: list[Item]) -> list[Item]:
    """Repeated ids get a suffix, so that no item overwrites another's files."""
    taken = {it.id for it in items}
    seen: set[str] = set()
    out = []
    for it in items:
        ident, n = it.id, 1
        while ident in seen or (n > 1 and ident in taken):
            n += 1
            ident = f"{it.id}~{n}"
        seen.add(ident)
        out.append(it if ident == it.id else Item(ident, it.text, it.image, it.target, it.reference, it.error))
    return out
