"""The teacher-forced batch of prompts + answers, and what one forward pass over it gives.

Every prompt is followed by its answer in one right-padded row (B, S), so positions count from each
prompt's first token as they did while generating. One forward pass gives every generated token's
probability and entropy and, recorded on the way, the attention the attention-based methods read:
the last layer only for raw attention, every layer for rollout. For a prompt too long for full maps,
the kernel keeps per-head statistics block by block and full rows only for the positions that
predict the answer (``attnviz.recording.plan``), so no L x L map of any layer is held.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, replace

import numpy as np
import torch

from attnviz.attribution.methods import relevance as R
from attnviz.attribution.methods.options import RolloutOptions
from attnviz.errors import BadInput
from attnviz.recording import STACKS, recording
from attnviz.recording.plan import Plan, Shape, default_budget, full_bytes, gpu_budget, resolve

ATTENTION_ONLY = ("attention", "rollout")  # methods read from the one forward pass, without gradients


@dataclass
class Forced:
    """Prompts and answers as one right-padded batch: ids and mask (B, S) on the model's device.

    ``units[b]`` lists the explained answer slices (first, last) of example b: one per generated token,
    or one for a target span. A unit is predicted from positions P + first - 1 .. P + last - 1 and its
    scores cover positions 0 .. P + last - 1 (P: the prompt's length).
    """

    prompts: list[list[int]]
    answers: list[list[int]]
    units: list[list[tuple[int, int]]]
    ids: torch.Tensor  # (B, S)
    mask: torch.Tensor  # (B, S)

    @functools.cached_property
    def first_row(self) -> int:
        """The first position that predicts an explained token, over the batch."""
        return min(len(p) + u[0] - 1 for p, us in zip(self.prompts, self.units) for u in us)


def forced_batch(loaded, prompts: list[list[int]], answers: list[list[int]], units, fill: int) -> Forced:
    from attnviz.models.generate import padded

    ids, mask = padded([p + a for p, a in zip(prompts, answers)], fill, False, loaded.device)
    return Forced(prompts, answers, units, ids, mask)


def takes(model, name: str) -> bool:
    """Whether ``model.forward`` takes keyword ``name``: read once per model class (a signature costs ~0.3 ms);
    a forward set on the instance (accelerate's hooks wrap the model in one) is read each time, as caching it
    would keep the model alive."""
    if "forward" in vars(model):
        return name in _parameters(model.forward)
    return name in _class_parameters(type(model))


@functools.lru_cache(maxsize=64)
def _class_parameters(cls) -> frozenset[str]:
    return _parameters(cls.forward)


def _parameters(forward) -> frozenset[str]:
    try:
        return frozenset(inspect.signature(forward).parameters)
    except (TypeError, ValueError):
        return frozenset()


SMALL = 64 * 2**20  # full maps this small are kept without reading the free memory (a file read per call)


def keep_for(loaded, keep: str, forced: Forced, layers: int, answer_rows: bool = False) -> str:
    """full or stats for recording ``layers`` layers of this batch (``auto``: full where it fits in memory);
    ``answer_rows``: full maps keep only the rows that predict the answer (see ``forward``), statistics still reduce
    every query."""
    b, s = forced.ids.shape
    shape = Shape(batch=b, queries=s, keys=s, layers=layers, heads=loaded.num_heads, model_heads=loaded.num_heads,
                  store_bytes=4)
    full = replace(shape, queries=s - forced.first_row) if answer_rows and loaded.backend == "attnviz" else shape
    if keep == "auto" and full_bytes(full) <= SMALL:
        return "full"
    plan = Plan(keep="stats", top_k=1, overview=1, queries=(forced.first_row, s))
    eager = 0 if loaded.backend == "attnviz" else loaded.num_layers  # output_attentions hands every layer back
    budget, gpu = default_budget(), gpu_budget(loaded.model)
    if keep != "stats":
        try:
            return resolve(replace(plan, keep="full"), full, budget, gpu, eager)[0]
        except BadInput:
            if keep == "full":
                raise
    return resolve(plan, shape, budget, gpu, eager)[0]  # statistics: asked for, or auto where full maps do not fit


def forward(loaded, forced: Forced, layers: list[int] | None, keep: str,
            answer_rows: bool = False) -> tuple[torch.Tensor, int, torch.Tensor | None, int]:
    """One pass: (logits (B, S', V) of the last S' positions, S - S', weights (L', B, H, Q', K) of ``layers``
    (None: record nothing), Q' rows starting at the returned first query row). ``answer_rows`` with full maps:
    keep only the rows that predict the answer, which a layer on SDPA's fused path computes alone."""
    model = loaded.model
    first = min(len(p) for p in forced.prompts) - 1  # the step scores read every answer token, explained or not
    kwargs = dict(input_ids=forced.ids)
    if not bool(forced.mask.all()):  # without padding the model builds no mask (as a plain call would)
        kwargs["attention_mask"] = forced.mask
    if takes(model, "use_cache"):
        kwargs["use_cache"] = False
    s = forced.ids.shape[1]
    if takes(model, "logits_to_keep"):
        kwargs["logits_to_keep"] = s - first  # a long prompt's own logits are never needed
    with torch.inference_mode():
        if layers is None:
            out, weights, q0 = model(**kwargs), None, 0
        elif loaded.backend != "attnviz":
            out = model(**kwargs, output_attentions=True)
            found = getattr(out, "attentions", None) or ()
            weights, q0 = torch.stack([found[i] for i in layers]).float().cpu(), 0
        else:
            out, weights, q0 = _recorded(loaded, kwargs, forced, layers, keep, answer_rows)
    logits = out.logits.float()
    return logits, s - logits.shape[1], weights, q0


def _recorded(loaded, kwargs, forced: Forced, layers: list[int], keep: str, answer_rows: bool):
    rows = (forced.first_row, forced.ids.shape[1])
    plan = Plan(keep="stats", top_k=1, overview=1, queries=rows) if keep == "stats" else None
    mask = forced.mask.cpu()
    with recording(loaded.model, layers=layers, plan=plan, masks={s: (mask, mask) for s in STACKS},
                   sites=loaded.sites, query_rows=rows if answer_rows and plan is None else None) as rec:
        out = loaded.model(**kwargs)
    stack = next(s for s in STACKS if rec.layers(s))
    return out, rec.stacked(stack), (rows[0] if plan or answer_rows else 0)


def step_scores(logits: torch.Tensor, offset: int, forced: Forced) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per example (probability (A,), entropy (A,)) of each answer token under the model's distribution."""
    out = []
    for b, (p, a) in enumerate(zip(forced.prompts, forced.answers)):
        rows = logits[b, len(p) - 1 - offset: len(p) + len(a) - 1 - offset].log_softmax(-1)  # (A, V)
        probs = rows.exp()
        tok = forced.ids[b, len(p): len(p) + len(a), None].to(rows.device)  # (A, 1) the answer's ids
        entropy = (probs * rows).sum(-1).neg_()  # nats
        out.append((probs.gather(-1, tok)[:, 0].cpu(), entropy.cpu()))
    return out


def attention_scores(method: str, options, forced: Forced, weights: torch.Tensor, q0: int) -> list[list[np.ndarray]]:
    """Per example, per unit: scores (float32) over positions 0 .. P + last - 1 from the recorded weights.

    attention: the last layer's head mean; rollout (arXiv:2005.00928): every layer composed. A unit reads
    the mean of the rows predicting its tokens.
    """
    if method == "attention":
        matrix = weights[-1].float().mean(dim=1)  # (B, Q', K)
    else:
        if q0 != 0 or weights.shape[-2] != weights.shape[-1]:
            raise BadInput("rollout composes every layer's full map, which this prompt is too long to keep; "
                           "use --method attention (statistics path) or a shorter prompt")
        opts = options if isinstance(options, RolloutOptions) else RolloutOptions()
        matrix = R.rollout(weights, forced.mask.cpu(), opts.fusion, opts.discard_ratio)  # (B, S, S)
    out = []
    for b, (p, units) in enumerate(zip(forced.prompts, forced.units)):
        spans = [(len(p) + first - 1 - q0, len(p) + last - q0, len(p) + last) for first, last in units]  # rows, keys
        top = min(lo for lo, _, _ in spans)
        block = matrix[b, top: max(hi for _, hi, _ in spans)].cpu().numpy().copy()  # (rows, K); rows are views
        out.append([block[lo - top, :n] if hi - lo == 1 else block[lo - top: hi - top, :n].mean(0)
                    for lo, hi, n in spans])
    return out
