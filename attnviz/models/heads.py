"""LoadedModel variants for task heads: a question-answering model reads a question and a context as one
input (``PairedModel``); a model whose head attnviz does not explain is shown without its head, and
every batch says so (``HeadlessModel``).

A question-answering input is given as one text, ``"QUESTION ||| CONTEXT"``, so that every command (and a file of inputs, one
per line) passes it as it passes a sentence; the two parts are encoded as the tokenizer's pair, as the
Hugging Face question-answering pipeline encodes them ([CLS] question [SEP] context [SEP] on BERT, with
token type 1 on the context). A text without the separator is encoded alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from attnviz.errors import BadInput
from attnviz.models.loaded import Encoded, LoadedModel, check_texts
from attnviz.models.readable import readable_ids

SEPARATOR = "|||"
SHAPE = f"'QUESTION {SEPARATOR} CONTEXT'"


def split_pair(text: str, i: int) -> tuple[str, str]:
    """'Who sat? ||| The cat sat.' -> ('Who sat?', 'The cat sat.'); ``i`` numbers the input in messages."""
    question, _, context = text.partition(SEPARATOR)
    if not question.strip() or not context.strip():
        missing = "question" if not question.strip() else "context"
        raise BadInput(f"input {i + 1} has no {missing}; give a question and a context as {SHAPE}")
    return question.strip(), context.strip()


@dataclass
class PairedModel(LoadedModel):
    """A LoadedModel whose texts may be question-context pairs, ``"QUESTION ||| CONTEXT"``: each becomes the
    tokenizer's pair (B, S); a long context is cut, never the question."""

    def token_counts(self, texts: list[str]) -> list[int]:
        """Tokens per text as ``encode`` reads it: a text with the separator as the pair (unchecked: what is
        wrong with it is said when it is encoded)."""
        paired = [i for i, t in enumerate(texts) if SEPARATOR in t]
        counts = super().token_counts(texts) if len(paired) < len(texts) else [0] * len(texts)
        if paired:
            parts = [[part.strip() for part in texts[i].partition(SEPARATOR)[::2]] for i in paired]
            found = self.tokenizer([q for q, _ in parts], [c for _, c in parts], truncation=False)["input_ids"]
            for i, ids in zip(paired, found):
                counts[i] = len(ids)
        return counts

    def _encode_texts(self, texts: list[str], on_long: str) -> Encoded:
        check_texts(texts)
        paired = [SEPARATOR in t for t in texts]
        if not any(paired):
            return super()._encode_texts(texts, on_long)
        if not all(paired):
            raise BadInput(f"input {paired.index(False) + 1} has no {SEPARATOR!r}; give every input as {SHAPE}")
        if on_long not in ("truncate", "error"):
            raise BadInput(f"--on-long must be truncate or error, not {on_long!r}")
        questions, contexts = zip(*(split_pair(t, i) for i, t in enumerate(texts)))
        tok = self.tokenizer
        lengths = self.token_counts(texts)
        notes = []
        for i, n in enumerate(lengths):
            if n > self.max_length:
                if on_long == "error":
                    raise BadInput(f"input {i + 1} is {n} tokens, longer than the model's maximum of {self.max_length}")
                # "input N ..." as every per-input note: a batch report gives each item the notes that name it
                notes.append(f"input {i + 1} was truncated from {n} to {self.max_length} tokens (its context was "
                             "cut, never the question)")
        try:
            batch = tok(list(questions), list(contexts), padding=True, truncation="only_second",
                        max_length=self.max_length, return_tensors="pt")
        except Exception as err:  # the question alone is longer than the model reads
            raise BadInput(f"a question is too long to leave room for its context ({' '.join(str(err).split())[:200]})") from None
        keep = ("input_ids", "attention_mask", "token_type_ids")
        batch = {k: v.to(self.device) for k, v in batch.items() if k in keep}
        read = [readable_ids(tok, ids.tolist()) for ids in batch["input_ids"]]
        return Encoded(batch, [r.labels for r in read], batch["attention_mask"].cpu(), notes,
                       pieces=[r.pieces for r in read], bounds=[r.bounds for r in read])


@dataclass
class HeadlessModel(LoadedModel):
    """A model loaded without its head because attnviz does not explain its head (a multiple-choice head):
    every batch carries ``meta["head"]``, the note that says which head and what is shown instead, so each
    command that reports a batch's notes shows it."""

    def encode(self, inputs, **options) -> Encoded:
        enc = super().encode(inputs, **options)
        enc.notes.insert(0, self.meta["head"])
        return enc
