"""The pieces of the statistics path: the exact top-k search over long rows, the causal cut of a block, and the
memory plan for a model on a GPU (where the statistics accumulate and a layer's scores are in flight)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch

from attnviz.attention.masks import mask_future
from attnviz.errors import BadInput
from attnviz.recording import capture
from attnviz.recording.plan import Gpu, Plan, Shape, gpu_budget, resolve
from attnviz.stats import top_keys


@pytest.mark.parametrize("width", [9, 129, 1001, 9003])  # direct; one level (a tail of 1); one; three (and tails)
def test_top_keys_find_the_k_largest_of_long_rows_with_ties(width):
    """The grouped top-k search gives torch.topk's values, each named once, in rows with ties: a row whose keys
    are mostly 0 (fewer than k non-zero), a row of equal weights, the largest in the last keys, and a column view (not
    contiguous)."""
    gen = torch.Generator().manual_seed(width)
    rows = torch.softmax(torch.randn(5, width, generator=gen) * 4, -1)
    rows[1, 3:] = 0.0
    rows[2] = 1.0 / width
    rows[3] = torch.randint(0, 4, (width,), generator=gen).float()  # many ties among the largest
    rows[4, -2:] = 1.0  # the largest in the last keys (a tail of fewer than a group)
    for x in (rows, torch.cat([rows, rows]).T.contiguous().T[:5]):
        keys = top_keys(x, 8)
        assert keys.shape == (5, 8)
        assert all(len(set(r.tolist())) == 8 for r in keys)  # 8 different keys a row
        assert torch.equal(x.gather(-1, keys).sort(-1, descending=True).values, x.topk(8).values)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape, start", [((1, 2, 5, 5), 0), ((2, 3, 4, 9), 5), ((1, 1, 300, 300), 0)])
def test_the_causal_cut_gives_the_future_keys_the_dtypes_min(dtype, shape, start):
    """Rows start .. start + n of a block: the keys past each row's own position get exactly the dtype's min (also
    in float16, where adding it to a score below -16 would give -inf), the others keep their scores; the softmax
    equals that of a boolean fill; a second call of the same shape (a kept mask) gives the same."""
    n, width = shape[-2:]
    scores = (torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 40).to(dtype)
    future = torch.arange(width)[None, :] > torch.arange(start, start + n)[:, None]  # (n, W)
    want = scores.masked_fill(future, torch.finfo(dtype).min)
    for _ in range(2):
        got = mask_future(scores.clone(), start)
        assert torch.equal(got, want)
        assert torch.equal(got.float().softmax(-1), want.float().softmax(-1))


def test_a_model_on_a_gpu_is_planned_against_the_gpus_free_memory(monkeypatch):
    """Statistics accumulate on the GPUs for the kept heads and full maps put one layer's scores (every head) on one
    GPU; eager attention hands every layer back there: what does not fit is refused (exit 2) or, under
    auto, kept as statistics. The budget: 70% of each GPU's free and cached-but-unused memory, summed and on the one
    with least, within --max-memory; None for a model on the CPU."""
    shape = Shape(batch=1, queries=8192, keys=8192, layers=32, heads=8, model_heads=32, store_bytes=4)
    ram, gib = 10**15, 2**30
    wide = lambda total, single=None: Gpu(int(total * gib), int((single or total) * gib))  # noqa: E731
    assert resolve(Plan(keep="stats"), shape, ram, None)[0] == "stats"  # the CPU alone, as before
    assert resolve(Plan(keep="stats"), shape, ram, wide(1))[0] == "stats"  # 32 x 8 heads of statistics: 0.3 GiB
    with pytest.raises(BadInput, match=r"needs about 0\.3\d GiB on the GPU .*, but the GPU has 0\.25 GiB"):
        resolve(Plan(keep="stats"), shape, ram, wide(0.25))
    keep, _, note = resolve(Plan(keep="auto"), shape, ram, wide(40, 10))  # full maps: 16 GiB of scores on one GPU
    assert keep == "stats" and "on the GPU" in note
    assert resolve(Plan(keep="auto"), shape, ram, wide(40, 20))[0] == "full"
    with pytest.raises(BadInput, match="on the GPU"):
        resolve(Plan(keep="full"), shape, ram, wide(40, 10))
    with pytest.raises(BadInput, match=r"needs about 512\.00 GiB on the GPU"):  # eager: 32 layers of 16 GiB
        resolve(Plan(keep="stats"), shape, ram, wide(400), eager=32)
    with pytest.raises(BadInput, match="--max-memory allows"):
        resolve(Plan(keep="stats"), shape, ram, Gpu(gib // 4, gib // 4, capped=True))

    class Placed:  # parameters on two GPUs, and layers offloaded by accelerate that run on GPU 2
        hf_device_map = {"a": 0, "b": "cpu", "c": 2}

        def parameters(self):
            return [SimpleNamespace(device=torch.device(*d)) for d in (("cuda", 0), ("cuda", 1), ("meta",))]

    assert gpu_budget(torch.nn.Linear(2, 2)) is None
    spare = {0: 10 * gib, 1: 4 * gib, 2: 6 * gib}  # free; device 1 also holds 1 GiB cached and unused
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d: (spare[d.index] - (gib if d.index == 1 else 0), 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda d: 3 * gib if d.index == 1 else 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda d: 2 * gib if d.index == 1 else 0)
    assert gpu_budget(Placed()) == Gpu(int(0.7 * 20 * gib), int(0.7 * 4 * gib))
    assert gpu_budget(Placed(), max_memory=gib) == Gpu(gib, gib, capped=True)


def test_capture_and_generate_plan_against_the_gpu(minilm, monkeypatch):
    """capture and generate's forced pass hand the GPU budget (with --max-memory) to the plan: what does not fit there
    is refused."""
    from attnviz.attribution.forced import Forced, keep_for

    asked = []
    small = lambda model, max_memory=None: asked.append(max_memory) or Gpu(2**20, 2**20)  # noqa: E731
    texts = ["the music was wonderful " * 50]
    monkeypatch.setattr(sys.modules["attnviz.recording.capture"], "gpu_budget", small)
    with pytest.raises(BadInput, match="on the GPU"):
        capture(minilm, texts, keep="stats", max_memory=2**30)
    assert asked == [2**30]
    monkeypatch.setattr("attnviz.attribution.forced.gpu_budget", small)
    n = 3000  # full maps over 64 MiB: the plan is read
    forced = Forced([[5] * (n - 1)], [[6]], [[(0, 0)]], torch.zeros(1, n, dtype=torch.long), torch.ones(1, n))
    with pytest.raises(BadInput, match="on the GPU"):
        keep_for(minilm, "auto", forced, minilm.num_layers)


def test_statistics_of_chosen_heads_are_those_heads_statistics(minilm):
    """--heads under statistics reduces only the kept heads, and gives what all heads give for them."""
    texts = ["The movie was not good, but the music was wonderful.", "short one"]
    every = capture(minilm, texts, keep="stats", top_k=3, overview=3)
    some = capture(minilm, texts, keep="stats", top_k=3, overview=3, heads=[1, 5])
    for name, value in every.stats.items():
        assert torch.equal(some.stats[name], value[:, :, [1, 5]]), name


def test_generates_answer_rows_plan_full_maps_by_their_rows_and_statistics_by_every_query(monkeypatch):
    """Raw attention keeps the answer's rows: full maps count those rows alone, statistics every query they reduce."""
    from attnviz.attribution.forced import Forced, keep_for
    from attnviz.models import load_model
    from attnviz.recording.plan import Plan, Shape, full_bytes, stats_bytes

    loaded = load_model("toy-induction", device="cpu")
    n, h = 6000, loaded.num_heads
    forced = Forced([[5] * (n - 8)], [[6] * 8], [[(t, t) for t in range(8)]], torch.zeros(1, n, dtype=torch.long),
                    torch.ones(1, n))
    whole = Shape(batch=1, queries=n, keys=n, layers=1, heads=h, model_heads=h, store_bytes=4)
    stats = stats_bytes(whole, Plan(keep="stats", top_k=1, overview=1, queries=(forced.first_row, n)))
    rows = full_bytes(Shape(batch=1, queries=9, keys=n, layers=1, heads=h, model_heads=h, store_bytes=4))
    monkeypatch.setattr("attnviz.attribution.forced.default_budget", lambda: stats // 2)
    with pytest.raises(BadInput, match="needs about"):
        keep_for(loaded, "stats", forced, 1, answer_rows=True)
    assert rows < stats // 2 < full_bytes(whole)  # the rows fit where the whole maps would not
    assert keep_for(loaded, "full", forced, 1, answer_rows=True) == "full"
    with pytest.raises(BadInput, match="needs about"):
        keep_for(loaded, "full", forced, 1)
