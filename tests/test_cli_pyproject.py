"""``[tool.attnviz]`` in pyproject.toml: defaults reach the commands, options override them, mistakes are named."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.cli import common as c
from attnviz.maps import AttentionMaps

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_pyproject_defaults_apply_and_options_override(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[tool.attnviz]\nview = "mean"\nmodel = "toy-sentiment"\n'
                                             '[tool.attnviz.heatmap]\nlayer = 1\nhide-special = true\n'
                                             '[tool.attnviz.capture]\nlayers = "1-2"\nstore-dtype = "float16"\n')
    monkeypatch.chdir(tmp_path)
    import attnviz.report.capture as library
    from attnviz.cli import default_map

    dm = default_map()
    seen = []
    nothing = library.Heatmaps([], [], SimpleNamespace(kind="encoder", model="toy-sentiment", notes=[]))
    monkeypatch.setattr(library, "write_heatmap_files", lambda config: seen.append(config) or nothing)
    assert runner.invoke(app, ["heatmap", "hi"], default_map=dm).exit_code == 0
    assert runner.invoke(app, ["heatmap", "hi", "--layer", "0", "--view", "head"], default_map=dm).exit_code == 0
    used, overridden = seen
    assert (used.view, used.layer, used.hide_special, used.source.model) == ("mean", 1, True, "toy-sentiment")
    assert (overridden.view, overridden.layer, overridden.hide_special) == ("head", 0, True)
    res = runner.invoke(app, ["capture", "hi", "--out", "m.safetensors"], default_map=dm)
    assert res.exit_code == 0, res.output
    maps = AttentionMaps.load(tmp_path / "m.safetensors")
    assert (maps.model, maps.layers, maps.dtype) == ("toy-sentiment", [1, 2], "float16")
    res = runner.invoke(app, ["capture", "hi", "--layers", "0", "--out", "n.safetensors"], default_map=dm)
    assert res.exit_code == 0 and AttentionMaps.load(tmp_path / "n.safetensors").layers == [0]


def test_pyproject_mistakes_are_named(tmp_path, monkeypatch, capsys):
    from attnviz.cli import default_map, main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.attnviz]\nmodle = "x"\n[tool.attnviz.heatmap]\nveiw = "layer"\n'
                                             'hide-special = true\n[tool.attnviz.hetmap]\nview = "mean"\n'
                                             '[tool.attnviz.snapshot]\nmax-abs = 1e-3\n')
    dm = default_map()
    err = capsys.readouterr().err
    assert "[tool.attnviz] modle is not an option (did you mean model?)" in err
    assert "[tool.attnviz.heatmap] veiw is not an option (did you mean view?)" in err
    assert "[tool.attnviz.hetmap] is not a command" in err
    assert "hide-special" not in err and "snapshot" not in err.split("commands:")[0]
    assert dm["heatmap"]["hide_special"] is True  # keys may use - like the options do
    (tmp_path / "pyproject.toml").write_text("[tool.attnviz\nmodel =")
    monkeypatch.setattr("sys.argv", ["attnviz", "models"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2 and "pyproject.toml is not valid TOML" in capsys.readouterr().err


def test_loading_options_reach_the_loader_and_follow_pyproject_defaults():
    seen = {}
    demo = typer.Typer()

    @demo.command()
    @c.loads_models("device", "online", "revision", device="cpu")
    def show(name: str = "x", loader: c.Loader = c.Loader()):
        seen.update(name=name, loader=loader)

    assert runner.invoke(demo, ["--name", "y", "--online", "--revision", "abc"]).exit_code == 0
    assert seen == {"name": "y", "loader": c.Loader(device="cpu", online=True, revision="abc")}
    res = runner.invoke(demo, ["--dtype", "float16"])
    assert res.exit_code == 2 and "No such option" in res.output  # only the named options exist
    res = runner.invoke(demo, [], default_map={"device": "cuda"})  # [tool.attnviz] device = "cuda"
    assert res.exit_code == 0 and seen["loader"].device == "cuda"
    for command in ("heatmap", "attribute", "cam", "report", "bench", "capture"):
        assert "--trust-remote-code" in runner.invoke(app, [command, "--help"]).output, command
    snapshot_help = runner.invoke(app, ["snapshot", "record", "--help"]).output
    assert "--allow-pickle" in snapshot_help and "--trust-remote-code" not in snapshot_help
