"""The pytest plugin (pytest11 entry point): attn_snapshot fixture and --attnviz-update, run by pytester."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Imported here, so pytester's in-process runs find them loaded: it drops the modules a run imports,
# and importing torch-backed modules afresh in one process is not safe.
import attnviz.models.toys.toy  # noqa: F401
import attnviz.snapshot.ci  # noqa: F401
import attnviz.snapshot.run  # noqa: F401

pytest_plugins = ["pytester"]

# The plugin comes from the entry point; where autoloading is off, name it.
EXTRA = ["-p", "attnviz.pytest_plugin"] if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") else []

TEST_FILE = '''
from pathlib import Path

import torch

from attnviz.models.toys.chars import CharTokenizer
from attnviz.models.loaded import LoadedModel
from attnviz.models.toys.toy import ToyConfig, build_toy

TEXTS = ["the cat sat on the mat", "a dog ran far"]


def model():
    tok = CharTokenizer(sorted(set("".join(TEXTS))))
    torch.manual_seed(0)
    toy = build_toy(ToyConfig(vocab_size=len(tok), d_model=16, n_layers=2, n_heads=2, max_len=32)).eval()
    qkv = toy.encoder.layers[1].attn.qkv.weight  # (3d, d): the query rows come first
    signs = torch.randint(0, 2, (16, 16), generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        for layer in toy.encoder.layers:
            layer.attn.qkv.weight.mul_(10)
        qkv[:16] += float(Path(__file__).with_name("nudge.txt").read_text()) * signs
    return LoadedModel(model=toy, name="toy", kind="encoder", task="causal-lm", num_layers=2, num_heads=2,
                       backend="attnviz", tokenizer=tok, max_length=32)


def test_attention_is_stable(attn_snapshot):
    attn_snapshot.check(model(), TEXTS)
'''


def run(pytester, *args):
    return pytester.runpytest(*EXTRA, "-p", "no:cacheprovider", *args)


@pytest.mark.slow
def test_plugin_records_checks_and_fails_on_drift(pytester):
    pytester.makepyfile(test_model=TEST_FILE)
    nudge = pytester.path / "nudge.txt"
    nudge.write_text("0")
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*attnviz snapshot: no baselines for this check in*record them with: pytest --attnviz-update*"])

    run(pytester, "--attnviz-update").assert_outcomes(passed=1)
    folder = pytester.path / "__attnviz_snapshots__" / "test_model" / "test_attention_is_stable"
    assert (folder / "manifest.json").is_file() and len(list(folder.glob("*.safetensors"))) == 2
    run(pytester).assert_outcomes(passed=1)

    nudge.write_text("1e-7")
    run(pytester).assert_outcomes(passed=1)

    nudge.write_text("1e-3")
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*attnviz snapshot drift*", "*first drifting layer: 1*",
                                 "*rewrite the baselines with: pytest --attnviz-update*"])
    run(pytester, "--attnviz-update").assert_outcomes(passed=1)  # an intended change: new baselines


def test_option_is_registered(pytester):
    result = pytester.runpytest(*EXTRA, "--help")
    result.stdout.fnmatch_lines(["*--attnviz-update*"])


def test_plugin_import_is_light():
    code = ("import sys, attnviz.pytest_plugin; "
            "print(sorted(m for m in ('torch', 'transformers', 'matplotlib', 'safetensors') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
