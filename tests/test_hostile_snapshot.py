"""Hostile and unlucky inputs to `attnviz snapshot`: one test per class of issue 16 that concerns snapshots."""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.snapshot.compare import Tolerance, head_stats
from attnviz.snapshot.store import load_baseline, save_baseline
from conftest import save_bert

INPUTS = ["the cat sat on the mat", "a dog ran far", "hello world", "the big dog"]
runner = CliRunner()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bert")
    found = {}
    for name, nudge in (("base", None), ("nan", (1, math.nan))):
        (root / name).mkdir()
        found[name] = save_bert(root / name, nudge=nudge)
    return found


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    Path("inputs.txt").write_text("\n".join(INPUTS) + "\n", encoding="utf-8")
    return tmp_path


def invoke(*args: str):
    return runner.invoke(app, ["snapshot", *args])


def one_line(text: str) -> str:
    return " ".join(text.split())


def record(models, folder: str = "snaps", inputs: str = "inputs.txt"):
    res = invoke("record", "--model", str(models["base"]), "--inputs", inputs, "--dir", folder)
    assert res.exit_code == 0, res.output
    return res


def test_record_never_deletes_files_it_did_not_write(work, models):
    """Issue 16 #1: only --update removes baselines, and only those the manifest lists as its own."""
    snaps = work / "snaps"
    snaps.mkdir()
    foreign = {"model.safetensors": b"weights of a model", "attention-0123456789.safetensors": b"a maps file"}
    for name, data in foreign.items():
        (snaps / name).write_bytes(data)
    res = record(models)
    assert "removed" not in res.output and "recorded 4 baselines" in res.output
    assert {n: (snaps / n).read_bytes() for n in foreign} == foreign

    Path("fewer.txt").write_text("\n".join(INPUTS[:2]), encoding="utf-8")
    res = invoke("check", "--dir", "snaps", "--inputs", "fewer.txt")
    assert res.exit_code == 0, res.output
    assert "model" not in one_line(res.output).split("baselines no input uses:")[-1]
    res = invoke("check", "--dir", "snaps", "--inputs", "fewer.txt", "--update")
    assert res.exit_code == 0, res.output
    assert "removed 2 baselines no input uses" in one_line(res.output)
    assert {n: (snaps / n).read_bytes() for n in foreign} == foreign
    assert len(list(snaps.glob("*.safetensors"))) == 2 + len(foreign)

    (snaps / "manifest.json").unlink()  # a damaged folder: --update rewrites, but has nothing it may remove
    res = invoke("check", "--dir", "snaps", "--inputs", "fewer.txt", "--update", "--model", str(models["base"]))
    assert res.exit_code == 0 and "removed" not in res.output, res.output
    assert len(list(snaps.glob("*.safetensors"))) == 2 + len(foreign)


def test_non_finite_attention_is_drift_in_every_output(work, models):
    """Issue 16 #2: NaN in the current attention or in a baseline is drift (exit 1), named in every output."""
    record(models)
    reports = ("--report", "diff.html", "--junit", "results.xml", "--markdown", "summary.md")

    def assert_named(res, side: str):
        assert res.exit_code == 1, res.output
        out = one_line(res.output)
        assert "nan%" not in out and f"non-finite values in the {side}" in out
        for path in ("diff.html", "summary.md"):
            text = one_line(Path(path).read_text(encoding="utf-8"))
            assert f"non-finite values in the {side}" in text and f"non-finite ({side})" in text
            assert ">nan" not in text and "| nan" not in text and "infx" not in text  # no number stands for NaN
        failures = [f.get("message") + (f.text or "") for f in ET.parse("results.xml").getroot().iter("failure")]
        assert failures and all(f"non-finite values in the {side}" in f for f in failures)

    assert_named(invoke("check", "--dir", "snaps", "--model", str(models["nan"]), *reports), "current")

    victim = sorted((work / "snaps").glob("*.safetensors"))[0]
    base = load_baseline(victim)
    base.maps.weights[0, 0, 0, 0, 0] = math.nan
    save_baseline(victim.parent, base)
    res = invoke("check", "--dir", "snaps", *reports)
    assert_named(res, "baseline")
    assert "drift in 1 of 4 inputs" in one_line(res.output)


def _jsd_reference(p: torch.Tensor, q: torch.Tensor) -> float:
    """Jensen-Shannon divergence in nats, by hand in Python floats: 1/2 KL(p||m) + 1/2 KL(q||m)."""
    total = 0.0
    for a, b in zip(p.double().tolist(), q.double().tolist()):
        m = (a + b) / 2
        total += (a * math.log(a / m) if a > 0 else 0.0) + (b * math.log(b / m) if b > 0 else 0.0)
    return total / 2


def test_jensen_shannon_is_exact_on_peaked_uniform_and_disjoint_rows():
    """Issue 16 #3: JSD of float32 attention, against a reference on peaked, uniform and disjoint rows."""
    logits = torch.zeros(6, 8)
    logits[0, 0], logits[1, 1] = 30.0, 30.0  # peaked on different keys: p[0] ~ 1e-13 in the other row
    logits[2, 0], logits[3, 0] = 20.0, 19.0  # peaked on the same key, by different margins
    base = torch.softmax(torch.stack([logits[0], logits[2], torch.zeros(8), logits[0]]), -1)  # (Q=4, K=8) float32
    cur = torch.softmax(torch.stack([logits[1], logits[3], torch.zeros(8), logits[0]]), -1)
    base[3], cur[3] = torch.tensor([0.5, 0.5, 0, 0, 0, 0, 0, 0]), torch.tensor([0, 0, 0.5, 0.5, 0, 0, 0, 0])  # disjoint
    cur[2] = torch.softmax(torch.arange(8.0) * 1e-2, -1)  # uniform against nearly uniform
    want = [_jsd_reference(b, c) for b, c in zip(base, cur)]
    assert want[0] > 0.69 and want[1] > 1e-9 and want[3] == pytest.approx(math.log(2))
    for q in range(4):  # head_stats reports the largest row; one row per call checks each
        got = float(head_stats(base[None, None, q : q + 1], cur[None, None, q : q + 1], Tolerance())["jsd"])
        assert got == pytest.approx(want[q], rel=1e-6), f"row {q}"
    scipy = pytest.importorskip("scipy.spatial.distance")
    for b, c, w in zip(base, cur, want):
        assert float(scipy.jensenshannon(b.double().numpy(), c.double().numpy())) ** 2 == pytest.approx(w, rel=1e-6)


def _edit(manifest: dict, path: str, value) -> None:
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    node = manifest
    for key in keys[:-1]:
        node = node[key]
    last = keys[-1]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value


@pytest.mark.parametrize("path, value, named", [
    ("inputs", [], "inputs"),
    ("inputs", "the cat", "inputs"),
    ("inputs", KeyError, "inputs"),
    ("inputs.0", "the cat", "inputs[0]"),
    ("inputs.0.text", 5, "inputs[0].text"),
    ("inputs.0.text", KeyError, "inputs[0].text"),
    ("capture", KeyError, "capture"),
    ("capture", [1], "capture"),
    ("capture.layers", "0-1", "capture.layers"),
    ("capture.layers", [99], "capture.layers"),
    ("capture.heads", [-1], "capture.heads"),
    ("capture.heads", [True], "capture.heads"),
    ("capture.methods", ["no-such-method"], "capture.methods"),
    ("capture.methods", "saliency", "capture.methods"),
    ("capture.store_dtype", "int8", "capture.store_dtype"),
    ("capture.batch_size", "32", "capture.batch_size"),
    ("capture.batch_size", 0, "capture.batch_size"),
    ("capture.target", 3, "capture.target"),
    ("model", 5, "model"),
    ("version", 99, "version"),
])
def test_hand_edited_manifest_exits_3_naming_the_key(work, models, path, value, named):
    """Issue 16 #11: wrong types, missing keys, out-of-range layers, unknown methods, empty inputs: exit 3."""
    record(models)
    manifest = Path("snaps/manifest.json")
    data = json.loads(manifest.read_text(encoding="utf-8"))
    _edit(data, path, value)
    manifest.write_text(json.dumps(data), encoding="utf-8")
    res = invoke("check", "--dir", "snaps", "--model", str(models["base"]), "--junit", "results.xml")
    assert res.exit_code == 3, res.output
    out = one_line(res.output)
    assert f"manifest.json: {named} " in out and "--update" in out, out
    assert "Traceback" not in res.output and "ok:" not in out and not Path("results.xml").exists()
    res = invoke(*out.split("regenerate it with: attnviz snapshot ")[1].split(), "--inputs", "inputs.txt")
    assert res.exit_code == 0 and "updated 4 baselines" in res.output, res.output  # the command it names works
    res = invoke("check", "--dir", "snaps")
    assert res.exit_code == 0 and "ok: 4 inputs" in one_line(res.output), res.output


def _limited(args: list[str], limit: int) -> subprocess.CompletedProcess:
    """The CLI in a child process whose files may not grow past ``limit`` bytes (SIGXFSZ is ignored by Python)."""
    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "attnviz", "snapshot", *args], capture_output=True, text=True,
                          preexec_fn=cap, env=env, timeout=300)


@pytest.mark.slow
def test_a_file_size_limit_exits_2_and_leaves_no_baselines_without_a_manifest(work, models):
    """Issue 16 #14: a full disk or a size limit while writing safetensors: exit 2, no half-written snapshot."""
    long = " ".join(["the big dog sat on the mat"] * 8)  # its baseline is ~100 KB; the others are a few KB
    Path("long.txt").write_text("\n".join(INPUTS + [long]) + "\n", encoding="utf-8")
    res = _limited(["record", "--model", str(models["base"]), "--inputs", "long.txt", "--dir", "snaps"], 40_000)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "cannot write" in res.stderr and "Traceback" not in res.stderr
    assert not list(work.rglob("*.safetensors")) and not list(work.rglob("*.part"))

    record(models)
    before = {p.name: p.read_bytes() for p in Path("snaps").iterdir()}
    res = _limited(["check", "--dir", "snaps", "--inputs", "long.txt", "--update"], 40_000)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "cannot write" in res.stderr and "Traceback" not in res.stderr
    assert {p.name: p.read_bytes() for p in Path("snaps").iterdir()} == before  # the old snapshot, whole
