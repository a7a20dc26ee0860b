"""The target of a generated answer: its tokens at the end of each row of a causal LM's batch.

Each row is a prompt followed by the answer so far (right-padded); ``spec.label`` holds per row the
answer tokens explained, which end at the row's last real position. One token is explained by its
logit (as the next-token target does, so one step of ``generate`` reads the same number as
``attribute --target``); a span of several tokens by the sum of their log-probabilities, the log of
the span's joint probability given the prefix, as is a typed ``--target-span`` of any length (``spec.span``).
"""

from __future__ import annotations

import torch

from attnviz.attribution.targets import TARGETS, Target, TargetSpec
from attnviz.errors import BadInput
from attnviz.models.loaded import token_names


def _explained(spec: TargetSpec, rows: int) -> torch.Tensor:
    """(R, k) token ids explained per row; every row explains the same number k of tokens."""
    label = spec.label
    if not isinstance(label, tuple) or len(label) != rows or len({len(t) for t in label}) != 1 or not label[0]:
        raise BadInput("a generated-token target needs, per row, the same number (>= 1) of answer token ids")
    return torch.tensor([list(t) for t in label], dtype=torch.long)


@TARGETS.register("generated-token")
def generated_token_target(loaded, batch, out, spec: TargetSpec) -> Target:
    """Answer tokens ending at each row's last real position: one token's logit, or a span's log-probability."""
    mask = batch["attention_mask"]
    device = mask.device
    tok = _explained(spec, mask.shape[0]).to(device)  # (R, k)
    k = tok.shape[1]
    last = mask.long().sum(1) - 1  # (R,) rows are right-padded
    at = last[:, None] - k + 1 + torch.arange(k, device=device)  # (R, k) the position predicting each token
    if bool((at < 0).any()):
        raise BadInput("a generated-token target explains tokens after the first position only")

    def logits(o, ex):
        return o.logits.float()[torch.arange(len(ex), device=device)[:, None], at[ex]]  # (n, k, V)

    def score(o, ex):
        lg = logits(o, ex)
        if k == 1 and not spec.span:
            return lg[:, 0].gather(-1, tok[ex][:, :1])[:, 0]
        return lg.log_softmax(-1).gather(-1, tok[ex][..., None])[..., 0].sum(-1)

    def prob(o, ex):
        return logits(o, ex).log_softmax(-1).gather(-1, tok[ex][..., None])[..., 0].sum(-1).exp()

    rows = torch.zeros(mask.shape, device=device)
    rows.scatter_(1, at, 1.0 / k)  # the target reads the rows predicting its tokens, equally
    every = torch.arange(mask.shape[0], device=device)
    names = [token_names(loaded.tokenizer, r) for r in tok.tolist()]
    prediction, probability = [], []  # with no output (the rows of `generate`, whose teacher-forced pass has them)
    if out is not None:
        prediction = token_names(loaded.tokenizer, out.logits.float()[every, last].argmax(-1).tolist())
        probability = prob(out, every).tolist()
    return Target(
        score=score, prob=prob, rows=rows, stack="decoder",
        describe=[f"answer {''.join(n)!r} read at position {a[0]}" for n, a in zip(names, at.tolist())],
        prediction=prediction, probability=probability,
    )
