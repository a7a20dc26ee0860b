"""Hostile and unlucky use of the command line (issue 16, items 12, 13 and 15-18): one test per class.

Each case must end with one line and the documented exit code, a valid file, or nothing written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest
from conftest import save_bert
from PIL import Image, ImageFile
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.errors import ModelNotFound

runner = CliRunner()
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:")

PYPROJECTS = {
    "tool is a number": "tool = 5\n",
    "attnviz is a list": "[tool]\nattnviz = [1, 2]\n",
    "a threshold that is a text": '[tool.attnviz.snapshot]\nmax-abs = "abc"\n',
    "a whole number that is a text": '[tool.attnviz.heatmap]\nlayer = "abc"\n',
    "a flag that is a text": '[tool.attnviz.report]\nhtml = "maybe"\n',
    "a nested list": "[tool.attnviz.heatmap]\nlayers = [[1]]\n",
    "a table under an option": "[tool.attnviz.heatmap.layer]\na = { b = { c = 1 } }\n",
    "a date": "[tool.attnviz]\nmodel = 1979-05-27\n",
    "nested too deeply to parse": "[tool.attnviz.heatmap]\nlayers = " + "[" * 5000 + "]" * 5000 + "\n",
}


@pytest.mark.parametrize("case", sorted(PYPROJECTS))
def test_12_a_pyproject_value_of_the_wrong_type_is_one_line_and_exit_2_for_every_command(case, tmp_path, monkeypatch,
                                                                                       capsys):
    from attnviz.cli import main

    (tmp_path / "pyproject.toml").write_text(PYPROJECTS[case], encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for argv in (["--help"], ["heatmap", "--help"], ["models"], ["snapshot", "check"]):
        monkeypatch.setattr(sys, "argv", ["attnviz", *argv])
        with pytest.raises(SystemExit) as exit_:
            main()
        err = capsys.readouterr().err
        assert exit_.value.code == 2, (argv, err)
        assert err.count("\n") == 1 and err.startswith("error:") and "pyproject.toml" in err, (argv, err)


def _config(folder, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


NOT_MODELS = {
    "config is a list": lambda d: (d / "config.json").write_text("[]"),
    "config is null": lambda d: (d / "config.json").write_text("null"),
    "config nested past the recursion limit": lambda d: (d / "config.json").write_text("[" * 100_000 + "]" * 100_000),
    "labels that are not text": lambda d: _config(d, architectures=["BertForSequenceClassification"],
                                                  id2label={"0": 5, "1": [1]}),
    "zero layers": lambda d: _config(d, num_hidden_layers=0),
}


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    return save_bert(tmp_path_factory.mktemp("bert"))


@pytest.mark.parametrize("case", [*sorted(NOT_MODELS), "a path too long", "an unknown user's home"])
def test_13_a_model_folder_that_is_not_a_model_exits_3_with_one_line(case, bert_folder, tmp_path):
    import shutil

    from attnviz.models import load_model

    if case in NOT_MODELS:
        spec = str(shutil.copytree(bert_folder, tmp_path / "m"))
        NOT_MODELS[case](tmp_path / "m")
    else:
        spec = "./" + "a" * 300 if case == "a path too long" else "~nosuchuser-attnviz/x"
    with pytest.raises(ModelNotFound):
        load_model(spec, device="cpu")
    res = runner.invoke(app, ["info", "--model", spec])
    assert res.exit_code == 3, res.output
    assert res.output.count("\n") == 1 and res.output.startswith("error:") and len(res.output) < 400, res.output


def test_15_unbounded_work_is_refused_before_it_starts(tmp_path, monkeypatch):
    import attnviz.attribution.tokens as tokens
    import attnviz.attribution.truth as truth
    import attnviz.recording.plan as plan

    # /dev/zero never ends: reading it whole would fill the memory (the bound is on bytes read, not on lines).
    started = time.monotonic()
    for command in ("heatmap", "capture", "attribute"):
        res = runner.invoke(app, [command, "--file", "/dev/zero", "--model", "toy-sentiment"])
        assert res.exit_code == 2 and "larger than" in res.output, res.output
    assert time.monotonic() - started < 30
    # --generated makes that many examples before anything else runs.
    made = []
    monkeypatch.setattr(truth, "generated", lambda *a, **k: made.append(a) or ([], []))
    res = runner.invoke(app, ["attribute", "--model", "toy-sentiment", "--generated", "100000"])
    assert res.exit_code == 2 and "--generated must be at most" in res.output and not made, res.output
    # 600 long inputs in one attribution batch: its gradients would need far more than the budget.
    monkeypatch.setattr(plan, "default_budget", lambda: 2 * 2**30)
    monkeypatch.setattr(tokens, "explain", lambda *a, **k: pytest.fail("the batch ran"))
    long = tmp_path / "long.txt"
    long.write_text("\n".join(" ".join(["the cat sat on the mat"] * 40) for _ in range(600)) + "\n")
    res = runner.invoke(app, ["attribute", "--file", str(long), "--reference", "a cat", "--out", str(tmp_path / "a.json")])
    assert res.exit_code == 2 and "explain fewer inputs" in res.output and not (tmp_path / "a.json").exists(), res.output
    # ... and full maps of them: the capture plans its memory and refuses before the model runs.
    res = runner.invoke(app, ["capture", "--file", str(long), "--keep", "full", "--max-memory", "1GiB",
                              "--out", str(tmp_path / "m.safetensors")])
    assert res.exit_code == 2 and "needs about" in res.output and not (tmp_path / "m.safetensors").exists()


def test_16_settings_that_would_fail_every_item_are_refused_before_anything_is_written(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("a good movie\na bad movie\n")
    out = tmp_path / "report"
    res = runner.invoke(app, ["report", str(src), "--model", "toy-sentiment", "--head", "-1", "--out", str(out)])
    assert res.exit_code == 2 and "head -1 is out of range" in res.output and not out.exists(), res.output
    png = tmp_path / "x.png"
    res = runner.invoke(app, ["heatmap", "a good movie", "--model", "toy-sentiment", "--stack", "bogus",
                              "--out", str(png)])
    assert res.exit_code == 2 and "--stack" in res.output and not png.exists(), res.output
    assert runner.invoke(app, ["report", str(src), "--stack", "bogus"]).exit_code == 2  # report has no stacks


def _report(out, src) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "attnviz", "report", str(src), "--model", "toy-sentiment", "--workers", "2",
           "--views", "head,layer", "--out", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _after_some_items(proc, out, n: int = 3) -> None:
    deadline = time.monotonic() + 120
    while len(list(out.glob("items/*/item.json"))) < n:
        assert proc.poll() is None and time.monotonic() < deadline, "the report ended before it could be interrupted"
        time.sleep(0.05)


def _ended(proc, seconds: float = 30) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the interrupted report did not end")
    return proc.returncode, err.decode()


@pytest.mark.slow
def test_17_every_interrupt_exits_130_and_keeps_finished_work(tmp_path):
    # Ctrl-C while the command line is still importing its modules: no traceback.
    hook = ("import builtins; real = builtins.__import__\n"
            "def hooked(name, *a, **k):\n"
            "    if name == 'typer': raise KeyboardInterrupt\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = hooked\n"
            "import runpy; runpy.run_module('attnviz', run_name='__main__', alter_sys=True)\n")
    res = subprocess.run([sys.executable, "-c", hook], capture_output=True, text=True, timeout=60)
    assert res.returncode == 130 and "Traceback" not in res.stderr, res.stderr
    src = tmp_path / "in.txt"
    src.write_text("\n".join(f"a good movie number {i} but a bad plot" for i in range(400)) + "\n")
    # Ctrl-C twice in the terminal (the whole process group): the second one while the workers shut down.
    for sig, times, target in ((signal.SIGINT, 2, "group"), (signal.SIGTERM, 1, "process")):
        out = tmp_path / f"out-{sig.name}"
        proc = _report(out, src)
        _after_some_items(proc, out)
        for _ in range(times):
            os.killpg(proc.pid, sig) if target == "group" else proc.send_signal(sig)
            time.sleep(0.3)
        started = time.monotonic()
        code, err = _ended(proc)
        assert code == 130 and time.monotonic() - started < 20, (sig, code, err)
        assert "Traceback" not in err and "Aborted" not in err, err
        summary = json.loads((out / "summary.json").read_text())
        assert summary["interrupted"] is True
        kept = {p.parent.name for p in out.glob("items/*/item.json")}
        assert len(summary["items"]) == len(kept) >= 3, (sig, len(summary["items"]), len(kept))


def test_18_csp_on_every_html_file_and_warnings_as_one_clean_line(tmp_path, monkeypatch):
    from attnviz.cli import common as c
    from attnviz.report.gallery import index_html

    out = tmp_path / "a.html"
    res = runner.invoke(app, ["attribute", "good movie", "--model", "toy-sentiment", "--method", "saliency",
                              "--no-faithfulness", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in out.read_text()
    assert "Content-Security-Policy" in index_html([], [], "text") and "default-src 'none'" in index_html([], [], "x")

    def noisy():
        warnings.warn("invalid value encountered in divide", RuntimeWarning)
        warnings.warn("invalid value encountered in divide", RuntimeWarning)

    demo = __import__("typer").Typer()
    demo.command()(c.guard(noisy))
    res = runner.invoke(demo, [])
    assert res.exit_code == 0
    assert res.output == "warning: invalid value encountered in divide\n", res.output

    import attnviz.recording.plan as plan

    big = tmp_path / "big.png"
    Image.new("RGB", (6000, 6000), (200, 10, 10)).save(big)  # a few kilobytes on disk, 36 megapixels decoded
    monkeypatch.setattr(plan, "default_budget", lambda: 256 * 2**20)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("the image was decoded"))
    res = runner.invoke(app, ["cam", str(big), "--out", str(tmp_path / "cam")])
    assert res.exit_code == 2 and "needs about" in res.output and not (tmp_path / "cam").exists(), res.output
