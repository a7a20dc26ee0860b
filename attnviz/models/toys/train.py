"""Training the toys on their synthetic tasks, deterministically for a seed, and measuring accuracy.

Same seed, same machine, same weights: torch is seeded, deterministic algorithms are on, the thread
count is fixed, and the data come from numpy generators seeded from the seed.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from attnviz.models.toys.chars import BOS_ID, CLS_ID, EOS_ID, PAD_ID, SEP_ID
from attnviz.models.toys.data import generate, heldout_seed
from attnviz.models.toys.recipes import RECIPES, Recipe
from attnviz.models.toys.toy import ToyTransformer, build_toy
from attnviz.models.toys.vision import to_pixels

THREADS = 1  # fixed so that the weights repeat exactly; more gain little at this size and stall on a busy machine


@dataclass
class Trained:
    model: ToyTransformer
    recipe: Recipe
    seed: int
    steps: int
    accuracy: float  # on held-out data from heldout_seed(seed)
    seconds: float


@contextmanager
def deterministic(seed: int):
    """Seeds torch, fixes threads and turns on deterministic algorithms; restores them afterwards, the
    caller's random stream included."""
    threads, strict = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):  # training runs on the CPU: only its generator is forked
        torch.manual_seed(seed)
        torch.set_num_threads(THREADS)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(strict)


def init(model: ToyTransformer) -> ToyTransformer:
    """Token embeddings at std 0.7, the scale of sinusoidal positions: at GPT-2's std 0.02 sinusoids drown
    the tokens after LayerNorm and training sits on a long plateau; with learned positions it lets content
    lead, as induction heads need (they match tokens, arXiv:2209.11895)."""
    if model.config.kind != "vision":
        with torch.no_grad():
            model.embed.weight.normal_(0.0, 0.7)
    return model


def tensors(recipe: Recipe, examples: list[dict]) -> dict:
    """Examples -> padded tensors for training or evaluation (right padding, PAD_ID = 0)."""
    if recipe.config.kind == "vision":
        pixels = to_pixels(np.stack([e["image"] for e in examples]))
        if recipe.multi_label:  # (B, C) multi-hot
            hot = torch.zeros(len(examples), len(recipe.labels))
            for row, e in enumerate(examples):
                hot[row, e["labels"]] = 1.0
            return {"pixel_values": pixels, "labels": hot}
        return {"pixel_values": pixels, "labels": torch.tensor([e["label"] for e in examples])}
    tok = recipe.tokenizer()
    enc = tok([e["text"] for e in examples], max_length=recipe.config.max_len)
    out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    if recipe.task == "classification":
        out["labels"] = torch.tensor([e["label"] for e in examples])
    elif recipe.task == "causal-lm":
        target = torch.zeros_like(enc["input_ids"], dtype=torch.bool)  # (B, T) positions to predict
        for i, e in enumerate(examples):
            target[i, [t for t, _ in e["copies"]]] = True
        out["target"] = target
    else:  # seq2seq: teacher forcing on [BOS] target -> target [EOS]
        rows = tok([e["target"] for e in examples], add_special_tokens=False, padding=False,
                   return_tensors=None)["input_ids"]
        width = max(len(r) for r in rows) + 1
        dec = [[BOS_ID] + r + [PAD_ID] * (width - 1 - len(r)) for r in rows]
        lab = [r + [EOS_ID] + [-100] * (width - 1 - len(r)) for r in rows]
        out["decoder_input_ids"], out["labels"] = torch.tensor(dec), torch.tensor(lab)
        out["decoder_attention_mask"] = (out["labels"] != -100).long()
    return out


def blank_out(recipe: Recipe, examples: list[dict], batch: dict, seed: int) -> dict:
    """Turns some characters outside the deciding words into [PAD], attention kept; labels unchanged.

    Integrated gradients' default baseline (arXiv:1703.01365) is the text with every character made [PAD].
    Padding is never attended in training, so without this its embedding stays at its random start and
    the model reads an all-[PAD] text as a confident class: attributions then explain the distance from
    that class, not the deciding word. Trained this way, [PAD] is filler, and an all-[PAD] text is neutral.
    """
    if not recipe.blank:
        return batch
    rng = np.random.default_rng([seed, 1])  # its own stream: the examples stay those of the seed
    ids = batch["input_ids"].clone()  # (B, T)
    for row, ex in enumerate(examples):
        if rng.random() >= recipe.blank:
            continue
        rate = 1.0 if rng.random() < 0.25 else rng.random()  # a quarter keep nothing but the deciding words
        free = [t for t in range(1, len(ex["text"]) + 1) if t not in set(ex["deciding"])]
        ids[row, [t for t in free if rng.random() < rate]] = PAD_ID
    return {**batch, "input_ids": ids}


def _take(batch: dict, idx: torch.Tensor) -> dict:
    """Rows ``idx`` of every tensor, cut to the longest real sequence among them (less padding)."""
    rows = {k: v[idx] for k, v in batch.items()}
    for mask, keys in (("attention_mask", ("input_ids", "attention_mask", "target")),
                       ("decoder_attention_mask", ("decoder_input_ids", "decoder_attention_mask", "labels"))):
        if mask in rows:
            n = int(rows[mask].sum(1).max())
            rows.update({k: rows[k][:, :n] for k in keys if k in rows})
    return rows


def loss_of(recipe: Recipe, model: ToyTransformer, batch: dict) -> torch.Tensor:
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "target")}
    if recipe.fade and model.training:
        return faded(recipe, model, batch)
    logits = model(**inputs).logits
    if recipe.task == "causal-lm":
        # The token at t is predicted at t - 1.
        pred = logits[:, :-1][batch["target"][:, 1:]]  # (N, V)
        return F.cross_entropy(pred, batch["input_ids"][:, 1:][batch["target"][:, 1:]])
    if recipe.task == "seq2seq":
        return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)
    if recipe.multi_label:
        return F.binary_cross_entropy_with_logits(logits, batch["labels"])
    return F.cross_entropy(logits, batch["labels"], label_smoothing=recipe.smoothing)


def faded(recipe: Recipe, model: ToyTransformer, batch: dict) -> torch.Tensor:
    """Some rows' text embeddings moved a random fraction a of the way from [PAD] to the text, their target
    mixed a : 1 - a between the label and neutral: a word present at a fraction is partial evidence, so
    the output changes smoothly along integrated gradients' straight path (arXiv:1703.01365)."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    emb = model.get_input_embeddings()
    x, pad = emb(ids), emb(torch.full_like(ids[:, :1], PAD_ID))  # (B, T, D), (B, 1, D)
    a = torch.rand(len(ids), 1, 1)
    a = torch.where(torch.rand(len(ids), 1, 1) < recipe.fade, a, torch.ones_like(a))  # (B, 1, 1)
    text = (ids != CLS_ID) & (ids != SEP_ID) & (mask == 1)
    x = torch.where(text[..., None], pad + a * (x - pad), x)  # (B, T, D)
    target = F.one_hot(batch["labels"], model.config.n_classes).float()  # (B, C)
    neutral = F.one_hot(torch.tensor(recipe.labels.index("neutral")), model.config.n_classes).float()
    target = a[:, 0] * target + (1 - a[:, 0]) * neutral
    logits = model(inputs_embeds=x, attention_mask=mask).logits
    return F.cross_entropy(logits, target, label_smoothing=recipe.smoothing)


def _lr(step: int, steps: int, peak: float) -> float:
    warm = max(1, steps // 20)
    if step < warm:
        return peak * (step + 1) / warm
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


def train(name: str, seed: int = 0, steps: int | None = None, heldout: int = 1000, log=None) -> Trained:
    """Train one toy from scratch; ``steps`` shortens (or lengthens) the recipe's run."""
    recipe = RECIPES[name]
    steps = recipe.steps if steps is None else steps
    start = time.perf_counter()
    with deterministic(seed):
        model = init(build_toy(recipe.config))
        examples = generate(name, min(recipe.pool, steps * recipe.batch), seed)
        data = blank_out(recipe, examples, tensors(recipe, examples), seed)
        opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.01)
        size = len(next(iter(data.values())))
        gen = torch.Generator().manual_seed(seed)
        model.train()
        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = _lr(step, steps, recipe.lr)
            idx = torch.randint(0, size, (recipe.batch,), generator=gen)
            loss = loss_of(recipe, model, _take(data, idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if log is not None and (step % 100 == 0 or step == steps - 1):
                log(step, float(loss.detach()))
        model.eval()
        acc = accuracy(name, model, generate(name, heldout, heldout_seed(seed)))
    return Trained(model, recipe, seed, steps, acc, time.perf_counter() - start)


@torch.inference_mode()
def accuracy(name: str, model: ToyTransformer, examples: list[dict], chunk: int = 250) -> float:
    """Held-out accuracy: classes (multi-label: the whole set of classes); copied tokens (induction); whole
    reversed sequences (greedy)."""
    recipe, right, total = RECIPES[name], 0, 0
    model.eval()
    for i in range(0, len(examples), chunk):
        batch = tensors(recipe, examples[i: i + chunk])
        if recipe.task == "seq2seq":
            hit = greedy(model, batch["input_ids"], batch["attention_mask"], batch["labels"].shape[1])
            ok = ((hit == batch["labels"]) | (batch["labels"] == -100)).all(1)
            right, total = right + int(ok.sum()), total + len(ok)
            continue
        if recipe.multi_label:
            logits = model(pixel_values=batch["pixel_values"]).logits
            ok = ((logits > 0).float() == batch["labels"]).all(1)
            right, total = right + int(ok.sum()), total + len(ok)
            continue
        logits = model(**{k: v for k, v in batch.items() if k not in ("labels", "target")}).logits
        if recipe.task == "causal-lm":
            pred = logits[:, :-1].argmax(-1)[batch["target"][:, 1:]]
            gold = batch["input_ids"][:, 1:][batch["target"][:, 1:]]
            right, total = right + int((pred == gold).sum()), total + len(gold)
        else:
            right, total = right + int((logits.argmax(-1) == batch["labels"]).sum()), total + len(logits)
    return right / max(total, 1)


def greedy(model: ToyTransformer, ids: torch.Tensor, mask: torch.Tensor, length: int) -> torch.Tensor:
    """Greedy decoding of ``length`` tokens (B, length), starting from [BOS]."""
    out = torch.full((ids.shape[0], 1), BOS_ID, dtype=torch.long)
    for _ in range(length):
        logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=out).logits[:, -1]  # (B, V)
        out = torch.cat([out, logits.argmax(-1, keepdim=True)], dim=1)
    return out[:, 1:]
