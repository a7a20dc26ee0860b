"""The typed options of the registered methods: one frozen dataclass per method, checked when built.

Building one is the check: a bad value raises BadInput (exit 2) with the option's command-line name,
so the CLI refuses it before the model loads. Nothing here imports torch: the CLI reads these for its
choices and help.
"""

from __future__ import annotations

from dataclasses import dataclass

from attnviz.errors import BadInput

BASELINES = ("pad", "mask", "zeros")  # what a hidden token becomes: the PAD or MASK embedding, or zeros
RULES = ("gausslegendre", "riemann_trapezoid", "riemann_middle")  # quadrature rules, as captum names them
AUTO_STEPS = (8, 16, 32, 64, 128, 256)  # tried in order by --steps auto; the last is the cap
AUTO_GAP = 0.01  # --steps auto stops once every example's relative completeness gap is below this
MAX_STEPS = 4096
FUSIONS = ("mean", "max", "min")  # how rollout fuses the heads of a layer


@dataclass(frozen=True)
class NoOptions:
    """A method that takes no options."""


def _choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise BadInput(f"unknown {what} {value!r}; choose {', '.join(choices)}")


def parse_steps(value) -> int | str:
    """``--steps``: a whole number 1..4096 (an int, or its digits) or "auto"."""
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not value.strip().isdigit()):
        raise BadInput(f"--steps must be a whole number or auto, not {value!r}")
    n = int(value)
    if not 1 <= n <= MAX_STEPS:
        raise BadInput(f"--steps must be between 1 and {MAX_STEPS} (or auto), not {n}")
    return n


@dataclass(frozen=True)
class IntegratedOptions:
    """Integrated gradients: quadrature ``steps`` (or "auto": the first of AUTO_STEPS whose completeness
    gap is under AUTO_GAP for every example), the ``baseline`` input and the quadrature ``rule``."""

    steps: int | str = 50
    baseline: str = "pad"
    rule: str = "gausslegendre"

    def __post_init__(self):
        object.__setattr__(self, "steps", parse_steps(self.steps))  # "50" from a command line becomes 50
        _choice(self.baseline, BASELINES, "baseline")
        _choice(self.rule, RULES, "integration rule")
        if self.rule == "riemann_trapezoid" and self.steps != "auto" and self.steps < 2:
            raise BadInput("riemann_trapezoid needs at least 2 steps")


@dataclass(frozen=True)
class OcclusionOptions:
    """Occlusion: a ``window`` of tokens slides over the text, hidden tokens take the ``baseline``."""

    window: int = 1
    baseline: str = "pad"

    def __post_init__(self):
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise BadInput(f"--window must be a whole number >= 1, not {self.window!r}")
        _choice(self.baseline, BASELINES, "baseline")


@dataclass(frozen=True)
class RolloutOptions:
    """Attention rollout: head ``fusion`` and the share of the weakest attention to drop per layer."""

    fusion: str = "mean"
    discard_ratio: float = 0.0

    def __post_init__(self):
        _choice(self.fusion, FUSIONS, "head fusion")
        if not isinstance(self.discard_ratio, (int, float)) or not 0.0 <= self.discard_ratio < 1.0:
            raise BadInput(f"--discard-ratio must be in [0, 1), not {self.discard_ratio}")


@dataclass(frozen=True)
class LayerOptions:
    """A CAM method that reads one layer: ``layer`` counts from 0, negative from the end."""

    layer: int = -1

    def __post_init__(self):
        if isinstance(self.layer, bool) or not isinstance(self.layer, int):
            raise BadInput(f"--layer must be a whole number, not {self.layer!r}")
