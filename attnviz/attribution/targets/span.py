"""A typed target of several tokens explained as one (``--target-span``): a causal LM's log-probability of
the whole text after each input, the sum of its tokens' log-probabilities (each given the tokens before it).

Every input is followed by the target's tokens but the last (right-padded), so that one forward pass reads
the probability of each of them; those appended tokens are context the model reads, not input to explain,
so they are never hidden, scored or shown. The score itself is the ``generated-token`` target's.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from attnviz.attribution.targets import TARGETS, Target, TargetSpec
from attnviz.attribution.targets.text import real_positions, spelled
from attnviz.errors import BadInput
from attnviz.models.loaded import Encoded, token_names
from attnviz.models.readable import readable_ids


def check_span(task: str, spec: TargetSpec) -> None:
    """--target-span needs a causal LM and a typed --target, and reads the target after each whole input."""
    if task != "causal-lm":
        raise BadInput(f"--target-span explains a text of several tokens after a causal LM's input; this is a {task} "
                       "model (a seq2seq output is explained with --answer TEXT and --target-token POS)")
    if spec.label is None or not str(spec.label).strip():
        raise BadInput('--target-span needs the text to explain: --target " Eiffel Tower"')
    if spec.position is not None:
        raise BadInput("--target-span reads the target after each input's last token; leave out --target-token "
                       "(shorten the input instead)")


def span_inputs(loaded, enc: Encoded, text: str) -> tuple[Encoded, list[int], torch.Tensor]:
    """``enc`` with the target's tokens but the last after each input (right-padded), the target's ids, and
    (B, S) True where a position holds an appended token."""
    ids = spelled(loaded, text)
    unk = getattr(loaded.tokenizer, "unk_token_id", None)
    if not ids or (unk is not None and unk in ids):
        raise BadInput(f"{text!r} is not text this model's vocabulary can spell")
    from attnviz.models.generate import pad_id, padded

    real = real_positions(enc.batch["attention_mask"])
    rows = [[int(enc.batch["input_ids"][e, q]) for q in r] + ids[:-1] for e, r in enumerate(real)]
    if max(len(r) for r in rows) > loaded.max_length:
        raise BadInput(f"an input with the target is longer than {loaded.name}'s {loaded.max_length} tokens")
    batch_ids, mask = padded(rows, pad_id(loaded), False, loaded.device)
    read = [readable_ids(loaded.tokenizer, row.tolist()) for row in batch_ids]
    appended = torch.zeros_like(mask, dtype=torch.bool)
    for e, r in enumerate(real):
        appended[e, len(r): len(r) + len(ids) - 1] = True
    extended = Encoded({"input_ids": batch_ids, "attention_mask": mask}, [r.labels for r in read], mask.cpu(),
                       list(enc.notes), pieces=[r.pieces for r in read], bounds=[r.bounds for r in read])
    return extended, ids, appended


def span_target(loaded, enc: Encoded, out, spec: TargetSpec, ids: list[int]) -> Target:
    """The generated-token target of ``ids`` after each input, described and noted as a typed span."""
    rows = enc.batch["input_ids"].shape[0]
    target = TARGETS.get("generated-token")(loaded, enc.batch, out, replace(spec, label=(tuple(ids),) * rows))
    names = token_names(loaded.tokenizer, ids)
    shown = " ".join(repr(n) for n in names)
    joined = "".join(names)
    last = torch.tensor([len(r) - len(ids) for r in real_positions(enc.batch["attention_mask"])])  # input's last
    after = out.logits[torch.arange(rows), last.to(out.logits.device)].argmax(-1).tolist()
    target.prediction = token_names(loaded.tokenizer, after)  # what the model predicts after the input itself
    target.describe = [f"text {joined!r} after the input (log-probability of its {len(ids)} tokens)"] * rows
    target.notes = [f"--target {spec.label!r} became {shown}; --target-span explains them together, as the sum "
                    "of their log-probabilities" + ("; the tokens before the last follow each input, as context, "
                                                    "never hidden or shown" if len(ids) > 1 else "")]
    return target
