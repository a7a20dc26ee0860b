"""Training a built-in toy end to end: train, measure its attention checks, and save the weights."""

from __future__ import annotations

from pathlib import Path

from attnviz.models.toys.data import generate, heldout_seed
from attnviz.models.toys.store import percent, save_toy
from attnviz.models.toys.train import Trained, train
from attnviz.models.toys.zoo import wrap
from attnviz.attribution.probes import measure

CHECK_EXAMPLES = 200  # held-out examples for the attention checks


def as_loaded(trained: Trained, name: str | None = None):
    """A freshly trained toy as a LoadedModel, as if loaded by its name."""
    recipe = trained.recipe
    return wrap(name or recipe.name, trained.model, recipe.tokenizer(), task=recipe.task, labels=recipe.labels,
                source=f"trained here (seed {trained.seed})", meta={"description": recipe.description},
                multi_label=recipe.multi_label)


def train_toy(name: str, *, seed: int = 0, steps: int | None = None, out: Path | None = None, heldout: int = 1000,
              log=None) -> dict:
    """Returns accuracy (a percentage string), steps, seconds and the attention checks."""
    trained = train(name, seed=seed, steps=steps, heldout=heldout, log=log)
    loaded = as_loaded(trained)
    checks = measure(loaded, generate(name, min(CHECK_EXAMPLES, heldout), heldout_seed(seed) + 1))
    result = {"accuracy": percent(trained.accuracy), "steps": trained.steps, "seconds": trained.seconds,
              "checks": checks, "trained": trained}
    if out is not None:
        tok = trained.recipe.tokenizer()
        meta = {"tokenizer": tok.to_dict() if tok else None, "labels": list(trained.recipe.labels),
                "task": trained.recipe.task, "multi_label": trained.recipe.multi_label,
                "description": trained.recipe.description,
                "accuracy": result["accuracy"], "seed": seed, "steps": trained.steps, "checks": checks}
        save_toy(out, trained.model, meta)
    return result
