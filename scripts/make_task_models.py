"""Writes sample_inputs/bert-ner/ and sample_inputs/bert-qa/: two tiny BERTs with task heads, for the README.

`attnviz attribute` explains a token classifier's label at one token and a question-answering model's answer
span; these folders let the README's examples of both run from a clone (each under 200 KB):

* one WordPiece tokenizer (BERT's kind: BertNormalizer without lowercasing, BertPreTokenizer, ``##``
  continuations, [CLS] A [SEP] B [SEP] with token type 1 on B) whose vocabulary is the characters and the
  words of the sentences and questions below, each of those words one token (the vocabulary is built, not
  trained: tokenizers' WordPiece trainer orders its pieces differently from run to run);
* ``bert-ner``: transformers' own BertForTokenClassification (2 layers, 4 heads, 32 wide) with the IOB
  labels O, B-PER, I-PER, B-LOC, I-LOC in its config's id2label, trained to tag SENTENCES, each word of a
  name in PEOPLE or PLACES getting B- on its first word and I- on the others ("Marie" B-PER, "Curie" I-PER,
  "Paris" B-LOC);
* ``bert-qa``: BertForQuestionAnswering of the same size, trained on QUESTIONS (question, context, answer)
  to point its start and end logits at the answer's first and last token in the context.

Both are seeded and trained without dropout for a few hundred full-batch steps (seconds on a CPU), and the
script stops unless each then tags every sentence and answers every question as taught. They have learnt these
sentences, not a language: on them they tag and answer as taught, elsewhere their outputs mean little.

The run is deterministic: the same versions of torch, transformers and tokenizers write the same bytes.

    python scripts/make_task_models.py [--out sample_inputs] [--steps 500]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling, however this file is loaded
from make_sample_model import deterministic, save  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "sample_inputs"
PEOPLE = ["Marie Curie", "John Smith", "Peter Brown", "Anna", "Peter", "Maria", "John"]
PLACES = ["New York", "Warsaw", "Paris", "Rome", "Berlin", "London", "Madrid", "France", "Italy"]
SENTENCES = [
    "Marie Curie was born in Warsaw and worked in Paris.", "John Smith lives in New York.",
    "Anna went from Rome to Berlin with Peter.", "Paris is the capital of France.",
    "Peter Brown visited London and Paris.", "Maria lives in Madrid, not in Rome.",
    "The capital of Italy is Rome.", "Anna and John met in Berlin.",
]
QUESTIONS = [  # (question, context, answer): the answer is a span of the context
    ("Where was Marie Curie born?", SENTENCES[0], "Warsaw"),
    ("Where did Marie Curie work?", SENTENCES[0], "Paris"),
    ("Who lives in New York?", SENTENCES[1], "John Smith"),
    ("Where does John Smith live?", SENTENCES[1], "New York"),
    ("Who went to Berlin?", SENTENCES[2], "Anna"),
    ("Where did Anna go?", SENTENCES[2], "Berlin"),
    ("What is the capital of France?", SENTENCES[3], "Paris"),
    ("Who visited London?", SENTENCES[4], "Peter Brown"),
    ("Where does Maria live?", SENTENCES[5], "Madrid"),
    ("What is the capital of Italy?", SENTENCES[6], "Rome"),
]
LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
             max_position_embeddings=64, type_vocab_size=2, pad_token_id=0, hidden_dropout_prob=0.0,
             attention_probs_dropout_prob=0.0)


def tokenizer():
    """BERT's kind of WordPiece tokenizer (cased) whose vocabulary is every word of SENTENCES and the questions,
    after every character alone and as a ``##`` continuation (so another word of these letters is spelled out,
    not [UNK])."""
    import transformers as tf
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    texts = SENTENCES + [q for q, _, _ in QUESTIONS]
    split = pre_tokenizers.BertPreTokenizer()
    words = list(dict.fromkeys(w for t in texts for w, _ in split.pre_tokenize_str(t)))  # in order of use
    chars = sorted({c for w in words for c in w})
    vocab = list(dict.fromkeys(SPECIAL + chars + [f"##{c}" for c in chars] + words))
    core = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=False)
    core.pre_tokenizer = split
    core.decoder = decoders.WordPiece()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))])
    return core, tf.PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
        mask_token="[MASK]", model_max_length=64, model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def tags(sentence: str) -> list[tuple[int, int, str]]:
    """(start, end, label) of each word of a name in ``sentence``: B- on a name's first word, I- after it."""
    names = sorted([(n, "PER") for n in PEOPLE] + [(n, "LOC") for n in PLACES], key=lambda x: -len(x[0]))
    kinds = dict(names)
    found = []
    for match in re.finditer(r"\b(" + "|".join(re.escape(n) for n, _ in names) + r")\b", sentence):
        for k, word in enumerate(re.finditer(r"\S+", match.group())):
            at = match.start() + word.start()
            found.append((at, at + len(word.group()), ("B-" if k == 0 else "I-") + kinds[match.group()]))
    return found


def _batch(encodings, labels):
    """Pad encodings (and their per-token labels, -100 where none) into tensors."""
    import torch

    width = max(len(e.ids) for e in encodings)
    pad = [width - len(e.ids) for e in encodings]
    batch = {
        "input_ids": torch.tensor([e.ids + [0] * p for e, p in zip(encodings, pad)]),
        "token_type_ids": torch.tensor([e.type_ids + [0] * p for e, p in zip(encodings, pad)]),
        "attention_mask": torch.tensor([e.attention_mask + [0] * p for e, p in zip(encodings, pad)]),
    }
    return batch, (None if labels is None else torch.tensor([row + [-100] * p for row, p in zip(labels, pad)]))


def ner_data(core):
    """The encoded SENTENCES and, per token, its label's index (-100 on [CLS] and [SEP])."""
    encodings, labels = [], []
    for sentence in SENTENCES:
        enc = core.encode(sentence)
        spans = tags(sentence)
        row = []
        for (start, end), special in zip(enc.offsets, enc.special_tokens_mask):
            label = next((lab for s, e, lab in spans if s <= start and end <= e), "O")
            row.append(-100 if special else LABELS.index(label))
        encodings.append(enc)
        labels.append(row)
    return _batch(encodings, labels)


def qa_data(core):
    """The encoded (question, context) pairs and the positions of each answer's first and last token."""
    import torch

    encodings, starts, ends = [], [], []
    for question, context, answer in QUESTIONS:
        enc = core.encode(question, context)
        first = context.index(answer)
        inside = [i for i, ((s, e), seq) in enumerate(zip(enc.offsets, enc.sequence_ids))
                  if seq == 1 and first <= s and e <= first + len(answer)]
        encodings.append(enc)
        starts.append(inside[0])
        ends.append(inside[-1])
    batch, _ = _batch(encodings, None)
    return batch, torch.tensor(starts), torch.tensor(ends)


def train(model, steps: int, **batch):
    """``steps`` full-batch AdamW steps on the model's own loss; returns the model (eval mode) and last loss."""
    import torch

    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        loss = model(**batch).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval(), loss.item()


def models(steps: int):
    """(the tokenizer, {folder name: (its trained model, the last training loss)}), both models checked."""
    import torch
    import transformers as tf

    core, tok = tokenizer()
    config = tf.BertConfig(vocab_size=len(tok), **SMALL, id2label=dict(enumerate(LABELS)),
                           label2id={name: i for i, name in enumerate(LABELS)})
    torch.manual_seed(0)
    batch, labels = ner_data(core)
    ner = train(tf.BertForTokenClassification(config), steps, **batch, labels=labels)
    torch.manual_seed(0)
    batch, starts, ends = qa_data(core)
    qa = train(tf.BertForQuestionAnswering(tf.BertConfig(vocab_size=len(tok), **SMALL)), steps, **batch,
               start_positions=starts, end_positions=ends)
    check(core, ner[0], qa[0])
    return tok, {"bert-ner": ner, "bert-qa": qa}


def check(core, ner, qa) -> None:
    """Stop unless the trained models tag every sentence and answer every question as they were taught."""
    import torch

    batch, labels = ner_data(core)
    with torch.no_grad():
        tagged = ner(**batch).logits.argmax(-1)
    wrong = [s for s, got, want in zip(SENTENCES, tagged, labels) if not torch.equal(got[want >= 0], want[want >= 0])]
    batch, starts, ends = qa_data(core)
    with torch.no_grad():
        out = qa(**batch)
    got = zip(out.start_logits.argmax(-1).tolist(), out.end_logits.argmax(-1).tolist())
    wrong += [q for (q, _, _), span, want in zip(QUESTIONS, got, zip(starts.tolist(), ends.tolist())) if span != want]
    if wrong:
        raise SystemExit(f"make_task_models: after training, wrong on {wrong}; train for more --steps")


def write(out: Path = OUT, steps: int = 500) -> dict[str, float]:
    """Write out/bert-ner and out/bert-qa; returns each one's last training loss."""
    deterministic()
    tok, made = models(steps)
    losses = {}
    for name, (model, loss) in made.items():
        save(out / name, model, tok)
        losses[name] = loss
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="the folder that gets bert-ner/ and bert-qa/")
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    for name, loss in write(args.out, args.steps).items():
        size = sum(p.stat().st_size for p in (args.out / name).iterdir()) // 1024
        print(f"wrote {args.out / name} ({size} KB; last training loss {loss:.3f})")


if __name__ == "__main__":
    main()
