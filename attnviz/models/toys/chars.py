"""A character-level tokenizer for the toys: every character is one token, Chinese included.

It offers the part of Hugging Face's tokenizer API that attnviz uses, so the toys and HF models go
through the same code. Whitespace becomes the visible token "▁" so heatmap labels show it.
"""

from __future__ import annotations

import unicodedata

import torch

from attnviz.errors import BadInput

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[BOS]", "[EOS]", "[MASK]")  # ids 0..6, in this order
PAD_ID, UNK_ID, CLS_ID, SEP_ID, BOS_ID, EOS_ID, MASK_ID = range(len(SPECIALS))
SPACE = "▁"  # what any whitespace character becomes
STYLES = ("cls", "bos", "none")


class Encoding(dict):
    """A tokenizer's batch: a dict, plus ``.to(device)`` as on Hugging Face's BatchEncoding."""

    def to(self, device) -> "Encoding":
        return Encoding({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.items()})


def split_chars(text: str) -> list[str]:
    # NFC first, so an accent typed as a combining mark is the same token as the precomposed letter.
    return [SPACE if ch.isspace() else ch for ch in unicodedata.normalize("NFC", text)]


class CharTokenizer:
    pad_token, unk_token, cls_token, sep_token, bos_token, eos_token, mask_token = SPECIALS
    pad_token_id, unk_token_id, cls_token_id, sep_token_id = PAD_ID, UNK_ID, CLS_ID, SEP_ID
    bos_token_id, eos_token_id, mask_token_id = BOS_ID, EOS_ID, MASK_ID
    all_special_tokens = list(SPECIALS)
    all_special_ids = list(range(len(SPECIALS)))

    def __init__(self, chars: list[str], *, style: str = "cls", model_max_length: int = 512):
        """``chars``: the vocabulary after the specials, one character each, in id order."""
        self.style = style  # "cls": [CLS] text [SEP] (encoders); "bos": [BOS] text (decoders); "none"
        self.model_max_length = model_max_length  # truncation length when max_length is not given
        self.chars: list[str] = []
        self._ids = {tok: i for i, tok in enumerate(SPECIALS)}
        for ch in chars:
            if not isinstance(ch, str) or len(ch) != 1:
                raise BadInput(f"a character tokenizer's vocabulary holds single characters, not {ch!r}")
            ch = SPACE if ch.isspace() else ch
            if ch not in self._ids:
                self._ids[ch] = len(self._ids)
                self.chars.append(ch)
        self._tokens = list(self._ids)

    @classmethod
    def from_texts(cls, texts: list[str], **options) -> "CharTokenizer":
        """The characters of ``texts`` in code-point order, so the same texts give the same ids."""
        return cls(sorted({ch for text in texts for ch in split_chars(text)}), **options)

    def to_dict(self) -> dict:
        return {"chars": list(self.chars), "style": self.style, "model_max_length": self.model_max_length}

    @classmethod
    def from_dict(cls, data: dict) -> "CharTokenizer":
        return cls(data["chars"], style=data.get("style", "cls"), model_max_length=data.get("model_max_length", 512))

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def get_vocab(self) -> dict[str, int]:
        return dict(self._ids)

    def tokenize(self, text: str) -> list[str]:
        return split_chars(text)

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            return self._ids.get(tokens, UNK_ID)
        return [self._ids.get(tok, UNK_ID) for tok in tokens]

    def convert_ids_to_tokens(self, ids):
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        if isinstance(ids, int):
            return self._token(ids)
        return [self._token(i) for i in ids]

    def _token(self, i: int) -> str:
        return self._tokens[i] if 0 <= i < len(self._tokens) else self.unk_token

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        tokens = self.convert_ids_to_tokens(ids)
        tokens = [tokens] if isinstance(tokens, str) else tokens
        if skip_special_tokens:
            tokens = [t for t in tokens if t not in SPECIALS]
        return "".join(" " if t == SPACE else t for t in tokens)

    def batch_decode(self, rows, skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(row, skip_special_tokens) for row in rows]

    def _wrap(self, ids: list[int], limit: int | None) -> list[int]:
        """Adds the style's special tokens, cutting the text so the result fits in ``limit``."""
        if self.style not in STYLES:
            raise BadInput(f"tokenizer style must be one of {', '.join(STYLES)}, not {self.style!r}")
        head, tail = {"cls": ([CLS_ID], [SEP_ID]), "bos": ([BOS_ID], []), "none": ([], [])}[self.style]
        if limit is not None:
            ids = ids[: max(limit - len(head) - len(tail), 0)]
        return head + ids + tail

    def __call__(
        self,
        texts: str | list[str],
        padding: bool | str = True,
        truncation: bool = True,
        max_length: int | None = None,
        return_tensors: str | None = "pt",
        add_special_tokens: bool = True,
    ) -> Encoding:
        """Right-padded ``input_ids`` and ``attention_mask`` (1 = real token), as LongTensors for "pt"."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        limit = (max_length or self.model_max_length) if truncation else None
        rows = []
        for text in texts:
            ids = self.convert_tokens_to_ids(split_chars(text))
            rows.append(self._wrap(ids, limit) if add_special_tokens else ids[:limit])
        width = max((len(r) for r in rows), default=0)
        if padding == "max_length" and max_length:
            width = max_length
        elif padding in (False, "do_not_pad"):
            width = 0
        ids = [r + [PAD_ID] * (width - len(r)) for r in rows]
        mask = [[1] * len(r) + [0] * (width - len(r)) for r in rows]
        if return_tensors is None:
            return Encoding(input_ids=ids, attention_mask=mask)
        if return_tensors != "pt":
            raise BadInput(f"return_tensors must be 'pt' or None, not {return_tensors!r}")
        if len({len(r) for r in ids}) > 1:
            raise BadInput("texts of different lengths need padding=True for return_tensors='pt'")
        return Encoding(input_ids=torch.tensor(ids, dtype=torch.long),
                        attention_mask=torch.tensor(mask, dtype=torch.long))
