"""The README's examples run from a clone: the files they name are in sample_inputs/, and none writes into docs/."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[list[str]]:
    """Every `attnviz ...` command of the README's bash blocks, continuation lines joined."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("attnviz "):
                out.append(shlex.split(line))
    return out


def test_the_readme_has_examples():
    assert len(_commands()) > 20


def test_every_sample_input_an_example_names_is_in_the_clone():
    named = {arg.rstrip("/") for cmd in _commands() for arg in cmd if arg.startswith("sample_inputs/")}
    assert {"sample_inputs/corpus.jsonl", "sample_inputs/corpus.csv", "sample_inputs/photos",
            "sample_inputs/watch.txt"} <= named
    assert [p for p in sorted(named) if not (ROOT / p).exists()] == []
    assert any((ROOT / "sample_inputs/photos").glob("*.png"))


def test_no_example_writes_into_docs():
    writes = [cmd for cmd in _commands() for flag, value in zip(cmd, cmd[1:])
              if flag in ("--out", "-o", "--report", "--junit", "--markdown") and value.startswith("docs/")]
    assert writes == []


def test_examples_on_a_model_shipped_in_the_clone_run_as_written(tmp_path, monkeypatch):
    """Examples whose --model is a folder in sample_inputs/ (the byte-level BPE sample_inputs/gpt2-zh) run as
    printed, from a clone; what they write goes to a scratch folder instead of the clone's outputs/."""
    from typer.testing import CliRunner

    from attnviz.cli import app

    shipped = [cmd for cmd in _commands() for flag, value in zip(cmd, cmd[1:])
               if flag in ("--model", "-m") and value.startswith("sample_inputs/")]
    assert shipped, "the README has no example on sample_inputs/gpt2-zh"
    monkeypatch.chdir(tmp_path)
    for cmd in shipped:
        args = [str(ROOT / a) if a.startswith("sample_inputs/") else a for a in cmd[1:]]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, (cmd, res.output)
