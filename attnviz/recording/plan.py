"""What a capture keeps, and the memory that will take, estimated before anything runs.

``keep="full"`` keeps (layer, batch, head, query, key); ``keep="stats"`` keeps the per-head statistics of
``attnviz.stats`` (and full rows of ``queries`` only), which grow with L instead of L^2; ``keep="auto"``
keeps full maps where they fit under ``max_memory`` and statistics otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from attnviz.errors import BadInput

KEEPS = ("full", "stats", "auto")
MAX_OVERVIEW = 256
BLOCK_BYTES = 32 * 2**20  # one query block's scores and weights on the CPU (a few passes over it stay in cache)
# on a GPU, where each block costs a few hundred kernel launches: at most this, and a tenth of its free memory
GPU_BLOCK_BYTES = 512 * 2**20


@dataclass(frozen=True)
class Plan:
    """How much of the attention a capture keeps (module docstring); checked when built."""

    keep: str = "full"  # full | stats | auto
    top_k: int = 8  # keys kept per query under statistics
    overview: int = 64  # side R of the pooled R x R overview (block means)
    queries: tuple[int, int] | None = None  # [start, stop): query rows whose full maps are kept under statistics
    max_memory: int | None = None  # bytes the capture may use; None: a safe share of free memory

    def __post_init__(self):
        if self.keep not in KEEPS:
            raise BadInput(f"keep must be one of {', '.join(KEEPS)}, not {self.keep!r}")
        if not isinstance(self.top_k, int) or self.top_k < 1:
            raise BadInput(f"--top-k must be at least 1, not {self.top_k!r}")
        if not isinstance(self.overview, int) or not 1 <= self.overview <= MAX_OVERVIEW:
            raise BadInput(f"--overview must be between 1 and {MAX_OVERVIEW}, not {self.overview!r}")
        if self.queries is not None and not (0 <= self.queries[0] < self.queries[1]):
            raise BadInput(f"--queries must be a range START-END with START <= END, not {self.queries!r}")
        if self.max_memory is not None and self.max_memory <= 0:
            raise BadInput("--max-memory must be more than 0 bytes")

    @property
    def stats(self) -> bool:
        return self.keep == "stats"


@dataclass(frozen=True)
class Shape:
    """The sizes a capture's memory depends on."""

    batch: int
    queries: int
    keys: int
    layers: int  # layers recorded
    heads: int  # heads kept
    model_heads: int  # heads the kernel computes per layer
    store_bytes: int  # bytes per stored weight (4 or 2)


def full_bytes(s: Shape) -> int:
    """Full maps: the kept (layer, B, h, Q, K), one layer's float32 scores and weights in flight, and the mask."""
    kept = s.layers * s.batch * s.heads * s.queries * s.keys * s.store_bytes
    return kept + 2 * 4 * s.batch * s.model_heads * s.queries * s.keys + s.batch * s.queries * s.keys


def stats_bytes(s: Shape, plan: Plan) -> int:
    """Statistics: per layer and head, rows (3 + 3 * top_k floats per query), received, the overview; one block."""
    r = min(plan.overview, s.queries) * min(plan.overview, s.keys)
    per_head = s.queries * (3 + 3 * min(plan.top_k, s.keys)) + s.keys + r
    rows = 0 if plan.queries is None else (min(plan.queries[1], s.queries) - plan.queries[0]) * s.keys
    kept = s.layers * s.batch * s.heads * (per_head + rows) * 4
    block = min(BLOCK_BYTES, 2 * 4 * s.batch * s.model_heads * s.queries * s.keys)
    return kept + block + s.batch * s.queries * s.keys  # a boolean (Q, K) mask where there is padding


@dataclass(frozen=True)
class Gpu:
    """What the GPUs a model computes on can take: ``total`` over them all, ``single`` on the one with least to spare
    (one layer's scores or one block must fit there), each a safe share of its free memory; ``capped`` when
    --max-memory is the smaller."""

    total: int
    single: int
    capped: bool = False


def device_bytes(keep: str, s: Shape, plan: Plan, gpu: Gpu, eager: int = 0) -> tuple[int, int]:
    """(bytes over all the GPUs, bytes on one) a capture holds there. Full maps: one layer's float32 scores and
    weights in flight (the maps themselves go to the CPU). Statistics: accumulators for the kept heads (they stay where
    the weights are computed until the pass ends), the overview's column bins, and one block. A model
    on transformers' eager attention hands every layer's weights back on the GPU (``eager``: how many layers),
    whatever is kept."""
    scores = 2 * 4 * s.batch * s.model_heads * s.queries * s.keys
    if eager:
        return eager * scores, scores
    if keep == "full":
        return scores, scores
    r = min(plan.overview, s.queries) * min(plan.overview, s.keys)
    per_head = s.queries * (3 + 3 * min(plan.top_k, s.keys)) + s.keys + r
    bins = s.keys * min(plan.overview, s.keys)  # (K, R) one-hot of each key's overview column, per layer
    block = max(BLOCK_BYTES, min(GPU_BLOCK_BYTES, gpu.single // 4))  # sinks.block_budget stays within this
    return s.layers * (s.batch * s.heads * per_head + bins) * 4 + block, block


def gpu_budget(model, max_memory: int | None = None) -> Gpu | None:
    """70% of what each GPU ``model`` computes on has to spare (free, plus what torch holds cached but unused), within
    ``max_memory``; None for a model on the CPU. Layers offloaded by accelerate (parameters on the CPU, on disk or on
    'meta' in a model that also uses a GPU) run on a GPU too: the first one counts for them."""
    import torch

    devices = {p.device for p in model.parameters() if p.device.type == "cuda"}
    placed = getattr(model, "hf_device_map", None) or {}
    devices |= {torch.device("cuda", d) for d in placed.values() if isinstance(d, int)}
    if not devices:
        return None
    spare = [torch.cuda.mem_get_info(d)[0] + torch.cuda.memory_reserved(d) - torch.cuda.memory_allocated(d)
             for d in devices]
    total, single = int(0.7 * sum(spare)), int(0.7 * min(spare))
    if max_memory is not None and max_memory < total:
        return Gpu(max_memory, min(single, max_memory), True)
    return Gpu(total, single)


def resolve(plan: Plan, shape: Shape, budget: int, gpu: Gpu | None = None,
            eager: int = 0) -> tuple[str, int, str | None]:
    """(keep, estimated bytes, note) for ``plan`` on ``shape`` under ``budget`` bytes of CPU memory and, for a model on
    a GPU, what ``gpu`` can take (``eager``: the layers a model on transformers' eager attention hands back); what
    cannot fit is refused."""
    keep, need, note = _resolve_cpu(plan, shape, budget)
    if gpu is None:
        return keep, need, note
    found = device_bytes(keep, shape, plan, gpu, eager)
    if not _fits(found, gpu) and plan.keep == "auto" and keep == "full":  # its scores do not fit there: statistics
        keep, need, _ = _resolve_cpu(replace(plan, keep="stats"), shape, budget)
        note = f"one layer's full scores would need {gib(found[0])} on the GPU ({gib(gpu.single)} to spare): " \
               "keeping statistics"
        found = device_bytes(keep, shape, plan, gpu, eager)
    if not _fits(found, gpu):
        limit = "--max-memory allows" if gpu.capped else "the GPU has"
        hint = "use a shorter input or fewer layers, or " + ("raise --max-memory" if gpu.capped else "free the GPU")
        raise BadInput(f"this capture needs about {gib(found[0])} on the GPU ({gib(found[1])} on one), but {limit} "
                       f"{gib(gpu.total)} ({gib(gpu.single)} on one); {hint}")
    return keep, need, note


def _fits(found: tuple[int, int], gpu: Gpu) -> bool:
    return found[0] <= gpu.total and found[1] <= gpu.single


def _resolve_cpu(plan: Plan, shape: Shape, budget: int) -> tuple[str, int, str | None]:
    """``resolve`` for the CPU's memory alone."""
    full, stats = full_bytes(shape), stats_bytes(shape, plan)
    if plan.keep == "auto":
        if full <= budget:
            return "full", full, None
        keep, need = "stats", stats
        note = (f"full maps would need {gib(full)} (limit {gib(budget)}): keeping per-head statistics "
                f"({gib(stats)}) instead; --keep full --queries A-B keeps full rows of a query range")
    else:
        keep, need, note = plan.keep, (full if plan.keep == "full" else stats), None
    if need > budget:
        hint = "; try --keep stats" if keep == "full" else "; record fewer layers or heads, or raise --max-memory"
        raise BadInput(f"this capture needs about {gib(need)} but may use {gib(budget)}{hint}")
    return keep, need, note


def parse_size(text: str | None) -> int | None:
    """'8GiB', '512MB', '2g' or a number of bytes -> bytes; None stays None (the default budget)."""
    if text is None or str(text).strip() == "":
        return None
    units = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6, "mib": 2**20,
             "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12, "tib": 2**40}
    raw = str(text).strip().lower().replace(" ", "")
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    try:
        size = float(number) * units[raw[len(number):]]
    except (ValueError, KeyError):
        raise BadInput(f"cannot read the size {text!r}; write e.g. 8GiB, 512MB or a number of bytes") from None
    if size <= 0:
        raise BadInput(f"a size must be more than 0, not {text!r}")
    return int(size)


def parse_queries(text: str | None) -> tuple[int, int] | None:
    """'4000-4095' -> (4000, 4096): the query rows whose full maps are kept (both ends included)."""
    if text is None or str(text).strip() == "":
        return None
    first, _, last = str(text).strip().partition("-")
    try:
        start, stop = int(first), int(last or first) + 1
    except ValueError:
        raise BadInput(f"cannot read --queries {text!r}; write START-END, e.g. 4000-4095") from None
    if not 0 <= start < stop:
        raise BadInput(f"--queries {text} must run from a smaller to a larger position")
    return start, stop


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"


def default_budget() -> int:
    """A safe share of what is free now: 70% of available RAM (kept maps and the statistics' results live on the
    CPU; a model on a GPU is planned against that GPU too, ``gpu_budget``)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        return int(info["MemAvailable"] * 0.7)
    except (OSError, KeyError, ValueError):
        return 8 * 2**30  # no /proc (macOS, Windows): assume a laptop's share
