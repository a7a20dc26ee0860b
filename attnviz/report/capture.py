"""Maps files and heatmap files from texts: one frozen config per run, checked before the model loads.

A layer or head the model does not have is refused from the model's config alone (``model_shape``), so
a mistyped ``--layer`` costs no model load; the loaded model is then the authority for the same checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from attnviz.errors import BadInput
from attnviz.io import check_writable
from attnviz.maps import AttentionMaps, parse_ranges
from attnviz.models import DEFAULT_MODEL, LoadedModel, LoadOptions, model_shape
from attnviz.models.loaded import check_texts
from attnviz.models.seq2seq import Answers, check_answers
from attnviz.recording import STORE_DTYPES, capture
from attnviz.recording.plan import Plan, parse_queries, parse_size

STACKS = ("encoder", "decoder", "cross")  # a single-stack model's one stack answers to encoder and decoder
Check = Callable[[int, int], object]  # (layers, heads) -> raises BadInput when the config asks for more


@dataclass(frozen=True)
class CaptureConfig:
    """Texts to run (read once, by the caller), the model, and which layers and heads to keep."""

    inputs: tuple[str, ...]
    model: str = DEFAULT_MODEL
    layers: str | None = None  # e.g. "0,3-5"; None keeps every layer
    heads: str | None = None  # e.g. "0-3"; None keeps every head
    store_dtype: str = "float32"  # float32 or float16
    on_long: str = "truncate"  # truncate (with a note) or error
    loading: LoadOptions = LoadOptions()
    keep: str = "auto"  # full maps, per-head statistics, or auto: full where they fit (recording/plan.py)
    top_k: int = 8  # keys kept per query under statistics
    overview: int = 64  # side of the pooled overview
    queries: str | None = None  # e.g. "4000-4095": query rows kept whole under statistics
    max_memory: str | None = None  # e.g. "8GiB": what the capture may keep; None: a safe share of free memory
    answers: Answers = Answers()  # an encoder-decoder's output: its own (at most so many tokens) or given

    def plan(self) -> Plan:
        """The long-input plan, checked (bad values are refused before any model loads)."""
        return Plan(keep=self.keep, top_k=self.top_k, overview=self.overview, queries=parse_queries(self.queries),
                    max_memory=parse_size(self.max_memory))

    def check(self) -> None:
        """What needs no model: at least one text, a known dtype, long-input rule and plan."""
        check_texts(self.inputs)
        self.plan()
        if self.store_dtype not in STORE_DTYPES:
            raise BadInput(f"--store-dtype must be float32 or float16, not {self.store_dtype!r}")
        if self.on_long not in ("truncate", "error"):
            raise BadInput(f"--on-long must be truncate or error, not {self.on_long!r}")

    def ranges(self, layers: int, heads: int) -> tuple[list[int] | None, list[int] | None]:
        """The chosen layers and heads as indices, refused with the valid range if the model lacks one."""
        return parse_ranges(self.layers, layers, "layer"), parse_ranges(self.heads, heads, "head")


@dataclass(frozen=True)
class HeatmapConfig:
    """One view of every input: captured from ``source`` texts, or read from a saved maps file (no model)."""

    source: CaptureConfig | Path
    view: str = "head"  # head, layer, model or mean
    layer: int = -1  # negative counts from the end
    head: int = 0  # the head view's head
    stack: str = "encoder"  # encoder, decoder or cross
    hide_special: bool = False
    fmt: str | None = None  # png, svg or pdf; None: from out's suffix, else png
    out: Path | None = None  # a file, a folder, or None for outputs/
    granularity: str = "token"  # token, word or char: attention pooled over a word's tokens (models/granularity.py)
    scale: str = "auto"  # the head view's colour scale: auto, linear, log or rank (render/scale.py)
    clip: float | None = None  # a percentile of the weights as the scale's top

    def check(self) -> None:
        from attnviz.models.granularity import check_granularity
        from attnviz.render import VIEWS
        from attnviz.render.long import LONG_VIEWS
        from attnviz.render.scale import SCALES
        from attnviz.report.figures import pick_format

        if self.view not in LONG_VIEWS:
            VIEWS.get(self.view)
        check_granularity(self.granularity)
        if self.scale not in SCALES:
            raise BadInput(f"--scale must be one of {', '.join(SCALES)}, not {self.scale!r}")
        if self.clip is not None and not 0 < self.clip <= 100:
            raise BadInput(f"--clip-percentile must be above 0 and at most 100, not {self.clip:g}")
        if self.stack not in STACKS:
            raise BadInput(f"--stack must be one of {', '.join(STACKS)}, not {self.stack!r}")
        pick_format(self.fmt, self.out)
        if isinstance(self.source, CaptureConfig):
            self.source.check()

    def drawn(self) -> tuple[int, int | None] | None:
        """(layer, head or None) when the view draws one layer (and head): all a capture needs to record."""
        if self.view == "head":
            return self.layer, self.head
        return (self.layer, None) if self.view == "layer" else None

    def within(self, layers: int, heads: int) -> None:
        """The shown layer (and head, for the head view) exist in a model of this shape."""
        if not -layers <= self.layer < layers:
            raise BadInput(f"layer {self.layer} is out of range; valid layers: 0-{layers - 1} "
                           f"(or -{layers} to -1 from the end)")
        if self.view == "head" and not 0 <= self.head < heads:
            raise BadInput(f"head {self.head} is out of range; valid heads: 0-{heads - 1}")


@dataclass(frozen=True)
class Heatmaps:
    """What a heatmap run wrote, and what the caller should tell the user."""

    paths: list[Path]
    warnings: list[str]
    maps: AttentionMaps  # weights (layer, batch, head, query, key), with the capture's notes


def load_checked(model: str, loading: LoadOptions, *checks: Check) -> LoadedModel:
    """Run ``checks`` against the shape in the model's config before loading it, then against the model."""
    shape = model_shape(model, revision=loading.revision)
    if shape is not None:
        for check in checks:
            check(shape.layers, shape.heads)
    loaded = loading.load(model)
    for check in checks:  # the loaded model is the authority (a config the shape could not read, say)
        check(loaded.num_layers, loaded.num_heads)
    return loaded


def capture_maps(config: CaptureConfig, *checks: Check, drawn: tuple[int, int | None] | None = None) -> AttentionMaps:
    """Check ``config`` (and ``checks``), load the model once, capture every input in one batch; ``drawn``
    (layer, head or None) records only that layer (and head), whatever ``config`` keeps."""
    config.check()
    loaded = load_checked(config.model, config.loading, config.ranges, *checks)
    layers, heads = config.ranges(loaded.num_layers, loaded.num_heads)
    if drawn is not None and loaded.kind != "encoder-decoder":  # its stacks count their layers apart
        layers = [drawn[0] % loaded.num_layers]  # a negative layer counts from the end
        heads = heads if drawn[1] is None else [drawn[1]]
    plan = config.plan()
    check_answers(loaded, config.answers)
    return capture(loaded, list(config.inputs), layers=layers, heads=heads, on_long=config.on_long,
                   store_dtype=STORE_DTYPES[config.store_dtype], keep=plan.keep, top_k=plan.top_k,
                   overview=plan.overview, queries=plan.queries, max_memory=plan.max_memory, answers=config.answers)


def write_maps(config: CaptureConfig, out: Path) -> AttentionMaps:
    """Capture and save one .safetensors maps file; ``out`` is checked before the model loads."""
    config.check()
    check_writable(out)
    maps = capture_maps(config)
    maps.save(out)
    return maps


def write_heatmap_files(config: HeatmapConfig) -> Heatmaps:
    """Render ``config.view`` of every input to its own file; everything is checked before the model loads."""
    from attnviz.report.figures import write_heatmaps

    from attnviz.models.granularity import group_maps
    from attnviz.report.slices import load_drawn

    config.check()
    source = config.source
    if isinstance(source, CaptureConfig):
        maps, texts = capture_maps(source, config.within, drawn=config.drawn()), list(source.inputs)
    else:
        maps, texts = load_drawn(source, config.drawn(), config.stack), None
    maps = group_maps(maps, config.granularity)
    paths, warnings = write_heatmaps(maps, view=config.view, layer=config.layer, head=config.head,
                                     stack=config.stack, hide_special=config.hide_special, fmt=config.fmt,
                                     out=config.out, texts=texts, scale=config.scale, clip=config.clip)
    return Heatmaps(paths, warnings, maps)
