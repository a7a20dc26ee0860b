"""Tokens as people read them: each token shown as the text it covers, with its raw piece kept beside it.

Byte-level BPE (GPT-2, RoBERTa, Llama 3, Qwen, BLOOM, BART, OPT, ...) stores a token as bytes spelled with
one printable character each ("Ġmovie", Chinese as "æĪĳ"); SentencePiece marks a space with "▁" and keeps
bytes it has no piece for as "<0xE6>". Here a token's bytes are recovered, the sequence is decoded as UTF-8
and each character is given to the token that holds its first byte, so that a character split over several
tokens reads as one label:

* a leading space is shown as SPACE ("␣movie"), a newline as NEWLINE;
* a token that only finishes a character begun in the token before it reads CONTINUES + that character
  ("+欢"); its bound is "+";
* special tokens ([CLS], <s>, padding) and tokenizers whose pieces are already text (WordPiece, character
  tokenizers) keep their strings as they are.

``bounds`` gives per token how it joins its neighbours: "W" starts a word, "C" continues the word before it,
"+" finishes a character of the token before it. A word is what whitespace delimits; each CJK character is a
word of its own (Chinese and Japanese do not put spaces between words).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

SPACE = "␣"  # shown for a leading space (DejaVu Sans has the glyph)
NEWLINE = "↵"
CONTINUES = "+"  # a token that only completes the character of the token before it
STYLES = ("bytes", "metaspace", "text")


@dataclass(frozen=True)
class Readable:
    """One sequence's tokens: ``labels`` as read, ``pieces`` as the tokenizer spells them, ``bounds`` one of
    W/C/+ per token (module docstring)."""

    labels: list[str]
    pieces: list[str]
    bounds: str


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable character -> byte table (the inverse of its bytes_to_unicode)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars)}


def style_of(tokenizer) -> str:
    """bytes (byte-level BPE), metaspace (SentencePiece "▁" and <0x..> bytes) or text (pieces are text)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = repr(getattr(backend, "decoder", None)) if backend is not None else ""
    if "ByteLevel" in decoder:
        return "bytes"
    if "Metaspace" in decoder or "▁" in decoder or "ByteFallback" in decoder:
        return "metaspace"
    return "text"


def piece_bytes(piece: str, style: str) -> bytes:
    """The bytes one piece stands for."""
    if style == "bytes":
        table = _byte_decoder()
        if all(c in table for c in piece):
            return bytes(table[c] for c in piece)
        return piece.encode()  # an added token spelled as plain text
    if style == "metaspace":
        if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            try:
                return bytes([int(piece[3:5], 16)])
            except ValueError:
                pass
        return piece.replace("▁", " ").encode()
    return piece.encode()


def _utf8_length(lead: int) -> int:
    return 1 if lead < 0x80 else 2 if 0xC0 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else 4 if 0xF0 <= lead < 0xF8 else 0


def _chars(data: bytes):
    """(start, end, character) of each UTF-8 character of ``data``; a broken sequence is one U+FFFD per byte."""
    p = 0
    while p < len(data):
        n = _utf8_length(data[p])
        try:
            ch = data[p:p + n].decode() if n else None
        except UnicodeDecodeError:
            ch = None
        if ch is None:
            n, ch = 1, "\ufffd"
        yield p, p + n, ch
        p += n


def _run(pieces: list[str], style: str) -> tuple[list[str], list[bool], list[str]]:
    """Texts of one run of ordinary tokens: per token the characters that start in it, whether its first byte
    finishes a character begun before it, and which character that is."""
    owner, data = [], b""
    for t, piece in enumerate(pieces):
        raw = piece_bytes(piece, style)
        owner.extend([t] * len(raw))
        data += raw
    texts, cont, finished = [""] * len(pieces), [False] * len(pieces), [""] * len(pieces)
    for start, end, ch in _chars(data):
        texts[owner[start]] += ch
        for p in range(start + 1, end):
            if owner[p] != owner[start] and owner[p] != owner[p - 1]:
                cont[owner[p]], finished[owner[p]] = True, ch
    return texts, cont, finished


def is_cjk_char(ch: str) -> bool:
    name = unicodedata.name(ch, "")
    return name.startswith(("CJK ", "HIRAGANA", "KATAKANA", "HANGUL"))


def show(text: str) -> str:
    """A token's text with its leading spaces and line breaks made visible."""
    stripped = text.lstrip(" ")
    shown = SPACE * (len(text) - len(stripped)) + stripped
    return shown.replace("\r\n", NEWLINE).replace("\n", NEWLINE).replace("\r", NEWLINE).replace("\t", "⇥")


def _bound(text: str, previous: str, cont: bool, first: bool) -> str:
    if cont:
        return "+"
    if first or not text or text[0].isspace() or is_cjk_char(text[0]) or (previous and is_cjk_char(previous[-1])):
        return "W"
    return "C"


def readable(pieces: list[str], special: set[str], style: str) -> Readable:
    """Labels and bounds of one sequence of ``pieces``; pieces in ``special`` stay as they are."""
    if style == "text":
        bounds = "".join("C" if p.startswith("##") and p not in special and i else "W" for i, p in enumerate(pieces))
        return Readable(list(pieces), list(pieces), bounds)
    labels, bounds = list(pieces), ["W"] * len(pieces)
    i = 0
    while i < len(pieces):
        if pieces[i] in special:
            i += 1
            continue
        j = i
        while j < len(pieces) and pieces[j] not in special:
            j += 1
        texts, cont, finished = _run(pieces[i:j], style)
        previous = ""
        for k, text in enumerate(texts):
            shown = show(text) if text else (CONTINUES + finished[k] if cont[k] else pieces[i + k])
            labels[i + k] = shown
            bounds[i + k] = _bound(text, previous, cont[k], k == 0)
            previous = text or previous
        i = j
    return Readable(labels, list(pieces), "".join(bounds))


def readable_ids(tokenizer, ids: list[int]) -> Readable:
    """``readable`` of token ``ids``; an id past the tokenizer's words (a vocabulary padded for speed) reads
    <id N>."""
    raw = [t if t is not None else f"<id {i}>" for i, t in zip(ids, tokenizer.convert_ids_to_tokens(ids))]
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    special |= {t for t in raw if t.startswith("<id ")}
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    special |= {str(tok) for tok in added.values() if getattr(tok, "special", False)}
    return readable(raw, special, style_of(tokenizer))
