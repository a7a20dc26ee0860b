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
