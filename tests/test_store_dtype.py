"""--store-dtype float16: the stored maps are the float32 capture rounded to float16, and keeping them in half
precision lowers the capture's peak memory instead of raising it (issue 22, point 9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attnviz.models.loaded import LoadedModel
from attnviz.models.toys.chars import CharTokenizer
from attnviz.models.toys.toy import ToyConfig, build_toy
from attnviz.recording import capture

TEXTS = ["the cat sat on the mat", "a dog ran far", "我喜欢这部电影"]
LONG = 2304  # tokens: one layer's float32 weights (2 heads) are 40 MiB
LAYERS = 6
CHARS = sorted(set("abcdefghijklmnopqrstuvwxyz .,!?"))


def toy(kind: str):
    from conftest import toy  # here, not at the top: the memory test's child imports this module, and conftest
    # imports transformers, which it does not need

    return toy(kind)


def long_toy() -> LoadedModel:
    """A seeded 6-layer, 2-head toy encoder that reads 2,304 characters: the stored maps dominate its capture."""
    tok = CharTokenizer(CHARS, style="cls", model_max_length=LONG)
    torch.manual_seed(0)
    model = build_toy(ToyConfig(kind="encoder", vocab_size=len(tok), d_model=16, n_layers=LAYERS, n_heads=2,
                                max_len=LONG, n_classes=2)).eval()
    return LoadedModel(model=model, name="toy-long", kind="encoder", task="classification", num_layers=LAYERS,
                       num_heads=2, backend="attnviz", tokenizer=tok, labels=["negative", "positive"],
                       max_length=LONG, source="seeded in the tests", architecture="ToyTransformer")


def long_text(tokens: int = LONG) -> str:
    return ("the cat sat on the mat. " * (tokens // 24 + 1))[: tokens - 2]  # with CLS and SEP: ``tokens``


@pytest.mark.parametrize("kind", ["encoder", "decoder", "encoder-decoder"])
@pytest.mark.parametrize("select", [{}, {"layers": [1]}, {"heads": [1]}, {"layers": [0], "heads": [0]}])
def test_float16_store_is_the_float32_capture_rounded(kind, select):
    loaded = toy(kind)
    full, half = (capture(loaded, TEXTS, store_dtype=d, **select) for d in (torch.float32, torch.float16))
    assert half.weights.dtype == torch.float16 and full.weights.dtype == torch.float32
    assert torch.equal(half.weights, full.weights.half())
    for stack in ("decoder", "cross"):
        if getattr(full, stack) is not None:
            assert torch.equal(getattr(half, stack), getattr(full, stack).half())


def test_float16_store_of_a_long_input_is_the_float32_capture_rounded():
    loaded, text = long_toy(), long_text(1000)
    full, half = (capture(loaded, [text], store_dtype=d) for d in (torch.float32, torch.float16))
    assert full.weights.shape == (LAYERS, 1, 2, 1000, 1000)
    assert torch.equal(half.weights, full.weights.half())


CHILD = """
import sys, torch
sys.path.insert(0, {tests!r})
import test_store_dtype as t
torch.set_num_threads(2)
loaded, text = t.long_toy(), t.long_text()
capture = t.capture
capture(loaded, ["warm up"], store_dtype=torch.float16)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the high-water mark
status = lambda key: int(next(l for l in open("/proc/self/status") if l.startswith(key + ":")).split()[1])
before = status("VmRSS")
maps = capture(loaded, [text], store_dtype=getattr(torch, {store!r}), **{select!r})
print("peak-kib", status("VmHWM") - before, maps.weights.nbytes // 1024)
"""


def _peaks(*runs: tuple[str, dict]) -> list[tuple[int, int]]:
    """For each (store, selection): (peak KiB a capture of the long input added to the resident set, KiB of the maps
    it kept), each in a fresh process of its own; they run side by side, as each one's high-water mark is its own."""
    tests = str(Path(__file__).parent)
    # glibc then maps every allocation past 64 KiB on its own and unmaps it when freed: the resident set follows
    # what is live, instead of what a heap happened to keep (its threshold otherwise moves with each free)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    procs = [subprocess.Popen([sys.executable, "-c", CHILD.format(tests=tests, store=store, select=select)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for store, select in runs]
    found = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        line = next(l for l in out.splitlines() if l.startswith("peak-kib"))
        found.append(tuple(map(int, line.split()[1:])))
    return found


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads Linux's resident high-water mark")
def test_float16_store_lowers_peak_memory():
    """float32 keeps 6 x 40 MiB of maps; float16 must keep half that and add no float32 copy of its own: before,
    the half-precision layers were collected and then stacked, which held them twice (no lower than float32)."""
    # the last: what heatmap records for the one head it draws
    (peak32, kept32), (peak16, kept16), (one, _) = _peaks(("float32", {}), ("float16", {}),
                                                          ("float16", {"layers": [0], "heads": [0]}))
    assert kept16 * 2 == kept32
    assert peak16 < peak32 - kept32 / 3, (peak16, peak32, kept32)
    assert one < peak16 - kept16 / 2, (one, peak16, kept16)  # it keeps 1/12 of the maps; one layer is in flight
