"""`attnviz snapshot record|check` end to end on tiny saved BERT folders: exit codes, reports, config."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.snapshot.store import input_key, load_baseline
from conftest import save_bert

INPUTS = ["the cat sat on the mat", "a dog ran far", "hello <script> & 猫", "the big dog"]
runner = CliRunner()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bert")
    found = {}
    for name, nudge in (("base", None), ("drift", (1, 1e-3)), ("tiny", (1, 1e-7))):
        (root / name).mkdir()
        found[name] = save_bert(root / name, nudge=nudge)
    return found


@pytest.fixture
def recorded(tmp_path, models, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    Path("inputs.txt").write_text("\n".join(INPUTS) + "\n", encoding="utf-8")
    res = invoke("record", "--model", str(models["base"]), "--inputs", "inputs.txt", "--dir", "snaps")
    assert res.exit_code == 0, res.output
    assert "recorded 4 baselines" in res.output
    return tmp_path / "snaps"


def invoke(*args: str):
    return runner.invoke(app, ["snapshot", *args])


def one_line(text: str) -> str:
    return " ".join(text.split())


def baseline_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def test_check_passes_on_the_same_model(recorded, models):
    res = invoke("check", "--dir", "snaps", "--inputs", "inputs.txt", "--model", str(models["base"]))
    assert res.exit_code == 0, res.output
    assert "ok: 4 inputs within tolerance" in res.output


def test_check_defaults_to_the_manifest_model_and_inputs(recorded, models):
    res = invoke("check", "--dir", "snaps")  # another model (the default minilm) would tokenize differently
    assert res.exit_code == 0, res.output
    assert "ok: 4 inputs within tolerance" in one_line(res.output)
    res = invoke("check", "--dir", "snaps", "--model", str(models["drift"]))  # the flag wins over the manifest
    assert res.exit_code == 1 and "drift in" in one_line(res.output), res.output


def test_drift_exits_1_names_the_layer_and_writes_reports(recorded, models):
    res = invoke("check", "--dir", "snaps", "--model", str(models["drift"]), "--report", "diff.html",
                 "--junit", "results.xml", "--markdown", "summary.md")
    assert res.exit_code == 1, res.output
    out = one_line(res.output)
    assert "worst heads" in out and "first drifting layer: 1" in out
    assert "context: weights_hash changed" in out
    html = Path("diff.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 1 and "layer 1 head" in html
    assert "&lt;script&gt; &amp; 猫" in html and "<script>" not in html
    assert "src=\"http" not in html and "<link" not in html
    suite = ET.parse("results.xml").getroot()
    assert suite.get("tests") == "4" and int(suite.get("failures")) >= 1
    assert any(c.get("name") == "hello <script> & 猫" for c in suite.iter("testcase"))
    md = Path("summary.md").read_text(encoding="utf-8")
    assert "| input | stack | layer |" in md and "\\<script\\>" in md and "<script>" not in md
    assert not list(Path.cwd().rglob("*.part"))


def test_a_1e7_change_passes(recorded, models):
    res = invoke("check", "--dir", "snaps", "--model", str(models["tiny"]))
    assert res.exit_code == 0, res.output
    used = re.search(r"ok: 4 inputs within tolerance; the closest head used ([0-9.]+)% of its tolerance",
                     one_line(res.output))
    assert used and 0 < float(used.group(1)) < 100  # the change is seen, and it is within tolerance


@pytest.mark.parametrize("damage", ["empty", "truncated", "not-safetensors"])
def test_corrupt_baselines_exit_3_naming_file_and_command(recorded, damage):
    victim = baseline_files(recorded)[1]
    data = victim.read_bytes()
    victim.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "not-safetensors": b"PK\x03\x04 zip"}[damage])
    res = invoke("check", "--dir", "snaps", "--junit", "results.xml")
    assert res.exit_code == 3, res.output
    out = one_line(res.output)
    assert victim.name in out and "attnviz snapshot check --dir snaps" in out and "--update" in out
    assert "Traceback" not in res.output and not Path("results.xml").exists()


def test_corrupt_manifest_exits_3(recorded):
    (recorded / "manifest.json").write_text("{not json", encoding="utf-8")
    res = invoke("check", "--dir", "snaps")
    assert res.exit_code == 3 and "manifest.json is corrupt" in one_line(res.output) and "--update" in res.output


def test_missing_baselines_and_manifest_exit_3(recorded):
    extra = Path("more.txt")
    extra.write_text("\n".join(INPUTS + ["a new input"]), encoding="utf-8")
    res = invoke("check", "--dir", "snaps", "--inputs", "more.txt")
    assert res.exit_code == 3 and "1 input has no baseline" in one_line(res.output)
    (recorded / "manifest.json").unlink()
    res = invoke("check", "--dir", "snaps")
    assert res.exit_code == 3 and "no snapshot manifest snaps/manifest.json" in one_line(res.output)
    res = invoke("check", "--dir", "nowhere")
    assert res.exit_code == 3 and "no snapshot folder nowhere" in one_line(res.output)


def test_unused_baselines_are_listed_and_update_rewrites(recorded, models):
    Path("fewer.txt").write_text("\n".join(INPUTS[:2]), encoding="utf-8")
    res = invoke("check", "--dir", "snaps", "--inputs", "fewer.txt")
    assert res.exit_code == 0 and "ok: 2 inputs" in one_line(res.output)
    listed = one_line(res.output).split("baselines no input uses: ")[1].split(" ")[0:2]
    assert sorted(k.rstrip(",") for k in listed) == sorted(input_key(t) for t in INPUTS[2:])
    res = invoke("record", "--model", str(models["drift"]), "--inputs", "inputs.txt", "--dir", "snaps")
    assert res.exit_code == 2 and "--update" in res.output
    res = invoke("check", "--dir", "snaps", "--inputs", "fewer.txt", "--model", str(models["drift"]), "--update")
    assert res.exit_code == 0 and "removed 2 baselines" in one_line(res.output)
    assert sorted(p.stem for p in baseline_files(recorded)) == sorted(input_key(t) for t in INPUTS[:2])
    res = invoke("check", "--dir", "snaps", "--model", str(models["drift"]))
    assert res.exit_code == 0 and "ok: 2 inputs within tolerance" in one_line(res.output), res.output
    res = invoke("check", "--dir", "snaps", "--model", str(models["base"]))  # the baselines are the drift model's now
    assert res.exit_code == 1, res.output


def test_tolerances_from_pyproject_and_flags(recorded, models):
    assert invoke("check", "--dir", "snaps", "--model", str(models["drift"])).exit_code == 1  # the defaults
    Path("pyproject.toml").write_text("[tool.attnviz.snapshot]\nmax-abs = 1.0\nmean_abs = 1.0\njsd = 1.0\n")
    res = invoke("check", "--dir", "snaps", "--model", str(models["drift"]))
    assert res.exit_code == 0 and "ok: 4 inputs within tolerance" in one_line(res.output), res.output
    res = invoke("check", "--dir", "snaps", "--model", str(models["drift"]), "--max-abs", "1e-6")
    assert res.exit_code == 1 and "drift in 4 of 4 inputs" in one_line(res.output), res.output


def test_fp16_baselines_pass(tmp_path, models, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("inputs.txt").write_text("\n".join(INPUTS), encoding="utf-8")
    res = invoke("record", "-m", str(models["base"]), "-i", "inputs.txt", "-d", "half", "--store-dtype", "float16")
    assert res.exit_code == 0 and "recorded 4 baselines in half" in res.output and "float16" in res.output
    assert json.loads(Path("half/manifest.json").read_text())["capture"]["store_dtype"] == "float16"
    assert {load_baseline(p).maps.weights.dtype for p in baseline_files(Path("half"))} == {torch.float16}
    res = invoke("check", "--dir", "half", "--model", str(models["tiny"]))
    assert res.exit_code == 0 and "ok: 4 inputs within tolerance" in one_line(res.output), res.output


@pytest.mark.parametrize("args, message", [
    (["check", "--dir", "snaps", "--max-abs", "-1"], "must be >= 0"),
    (["record", "--dir", "other"], "--inputs"),
    (["record", "--inputs", "inputs.txt", "--dir", "other", "--methods", "nope"], "unknown attribution method"),
    (["check", "--dir", "snaps", "--report", "no/such/folder/diff.html"], "does not exist"),
    (["record", "--inputs", "inputs.txt", "--dir", "other", "--store-dtype", "int8"], "float32 or float16"),
])
def test_usage_errors_exit_2_in_one_line(recorded, args, message):
    res = invoke(*args)
    assert res.exit_code == 2, res.output
    assert message in one_line(res.output) and "Traceback" not in res.output
    assert not Path("other").exists()


def test_record_with_attribution_methods(tmp_path, models, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("inputs.txt").write_text("\n".join(INPUTS[:2]), encoding="utf-8")
    res = invoke("record", "-m", str(models["base"]), "-i", "inputs.txt", "-d", "s", "--methods", "saliency,rollout",
                 "--reference", "a cat on a mat")
    assert res.exit_code == 0, res.output
    bases = [load_baseline(p) for p in baseline_files(Path("s"))]
    assert [sorted(b.attributions) for b in bases] == [["rollout", "saliency"]] * 2
    assert all(b.attributions["saliency"].shape == (b.maps.weights.shape[-1],) for b in bases)
    res = invoke("check", "--dir", "s", "--markdown", "s.md")
    assert res.exit_code == 0, res.output
    assert re.search(r"ok: 2 inputs", Path("s.md").read_text(encoding="utf-8"))
    res = invoke("check", "--dir", "s", "--attr-max", "0", "--attr-rank", "1.01")  # no attribution passes
    assert res.exit_code == 1 and "attributions drift: rollout, saliency" in one_line(res.output), res.output


def test_the_missing_manifest_hint_is_a_record_command_that_works(tmp_path):
    import shlex

    inputs = tmp_path / "in.txt"
    inputs.write_text("good film\nbad film\n", encoding="utf-8")
    folder = tmp_path / "snap"
    res = runner.invoke(app, ["snapshot", "check", "--dir", str(folder), "--model", "toy-sentiment",
                              "--inputs", str(inputs)])
    assert res.exit_code == 3, res.output
    hint = res.output.split("regenerate it with: ", 1)[1].strip()
    assert hint.startswith("attnviz snapshot record") and "--model toy-sentiment" in hint
    assert runner.invoke(app, shlex.split(hint)[1:]).exit_code == 0
    ok = runner.invoke(app, ["snapshot", "check", "--dir", str(folder)])
    assert ok.exit_code == 0 and ok.output.startswith("ok"), ok.output
