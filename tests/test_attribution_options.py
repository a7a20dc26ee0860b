"""Typed method options: one frozen dataclass per registered method, checked when built, ints stay ints."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

from attnviz.attribution.methods import CAM_METHODS, METHODS, IntegratedOptions, options_for
from attnviz.cli import app
from attnviz.errors import BadInput

runner = CliRunner()


@pytest.mark.parametrize("registry", [METHODS, CAM_METHODS])
def test_every_registered_method_has_a_frozen_options_dataclass(registry):
    for name in registry.names():
        spec = registry.get(name)
        options = spec.options()  # every default is valid
        assert dataclasses.is_dataclass(options) and spec.options.__dataclass_params__.frozen, name
        assert callable(spec.fn) and spec.summary, name
        assert isinstance(options_for(name, registry=registry), spec.options)


def test_options_are_checked_when_built_and_digits_become_ints():
    assert IntegratedOptions(steps="50").steps == 50 and IntegratedOptions(steps="auto").steps == "auto"
    for bad, message in ((dict(steps="lots"), "whole number or auto"), (dict(steps=0), "between 1 and 4096"),
                         (dict(steps=True), "whole number"), (dict(baseline="noise"), "unknown baseline 'noise'"),
                         (dict(rule="simpson"), "unknown integration rule")):
        with pytest.raises(BadInput, match=message):
            IntegratedOptions(**bad)
    with pytest.raises(BadInput, match="unknown attribution option 'stepz'"):
        options_for("integrated-gradients", stepz=3)
    with pytest.raises(BadInput, match="takes IntegratedOptions, not OcclusionOptions"):
        from attnviz.attribution.methods import OcclusionOptions

        options_for("integrated-gradients", OcclusionOptions())
    assert options_for("occlusion", steps=8, window=2).window == 2  # a field it does not take is not its concern


def test_steps_reach_the_method_as_an_int_from_the_command_line(tmp_path, monkeypatch):
    from attnviz.attribution.methods import integrated

    seen = []
    real = integrated.integrated_gradients
    monkeypatch.setattr(integrated, "integrated_gradients", lambda ctx, options: seen.append(options) or real(ctx, options))
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["attribute", "good film", "--model", "toy-encoder", "--device", "cpu", "--steps", "8",
                              "--method", "integrated-gradients", "--no-faithfulness", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert seen == [IntegratedOptions(steps=8)] and type(seen[0].steps) is int
    assert json.loads(out.read_text())["params"]["integrated-gradients"]["steps"] == 8


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "--steps must be between 1 and 4096"),
    (["--window", "0", "--method", "saliency"], "--window must be a whole number >= 1"),
    (["--fusion", "sum", "--method", "saliency"], "unknown head fusion 'sum'"),
    (["--discard-ratio", "1.5"], "--discard-ratio must be in [0, 1)"),
    (["--baseline", "noise", "--method", "rollout"], "unknown baseline 'noise'"),
])
def test_a_bad_option_is_refused_before_the_model_loads(tmp_path, monkeypatch, args, message):
    from attnviz.cli import common

    monkeypatch.setattr(common.Loader, "load", lambda self, model: pytest.fail("the model was loaded"))
    res = runner.invoke(app, ["attribute", "good film", "--model", "toy-encoder", *args, "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 2, res.output
    assert message in res.output and len(res.stderr.strip().splitlines()) == 1


def test_cam_refuses_a_bad_rollout_option_before_the_model_loads(tmp_path, monkeypatch):
    from attnviz.cli import common

    monkeypatch.setattr(common.Loader, "load", lambda self, model: pytest.fail("the model was loaded"))
    res = runner.invoke(app, ["cam", str(tmp_path), "--discard-ratio", "2", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--discard-ratio must be in [0, 1)" in res.stderr


def test_attribute_help_lists_every_registered_method():
    res = runner.invoke(app, ["attribute", "--help"])
    text = " ".join(res.stdout.split())
    assert res.exit_code == 0 and all(name in text for name in METHODS.names())


def test_the_registries_and_options_load_without_torch():
    import subprocess
    import sys

    code = ("import sys; import attnviz.attribution as a; a.METHODS.names(); a.CAM_METHODS.names(); "
            "a.IntegratedOptions(steps=8); print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr
