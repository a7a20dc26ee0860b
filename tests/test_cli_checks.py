"""Check once, read once: inputs are read once, and what the model's config rules out is refused before it loads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.maps import AttentionMaps

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize("args,needle", [
    (["heatmap", "x", "--layer", "99"], "layer 99 is out of range; valid layers: 0-5"),
    (["heatmap", "x", "--layer", "-7"], "valid layers: 0-5 (or -6 to -1 from the end)"),
    (["heatmap", "x", "--head", "99"], "head 99 is out of range; valid heads: 0-11"),
    (["capture", "x", "--layers", "0-99"], "layer 99 is out of range; valid layers: 0-5"),
    (["capture", "x", "--heads", "12"], "valid heads: 0-11"),
    (["heatmap", "x", "--model", "toy-sentiment", "--layer", "3"], "valid layers: 0-2"),
    (["capture", "x", "--model", "toy-encoder", "--heads", "4"], "valid heads: 0-3"),
])
def test_a_layer_or_head_the_model_lacks_is_refused_before_it_loads(args, needle, monkeypatch):
    import attnviz.models
    from attnviz.errors import ModelNotFound

    def loader_reached(*args, **kwargs):
        raise ModelNotFound("the loader was reached")

    monkeypatch.setattr(attnviz.models, "load_model", loader_reached)
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and needle in res.output and "loader" not in res.output, res.output
    ok = [a if a not in ("99", "-7", "0-99", "12", "3", "4") else "0" for a in args]
    assert "the loader was reached" in runner.invoke(app, ok).output  # in range: the model would load


def test_a_folder_model_is_checked_from_its_config_json(tmp_path, monkeypatch):
    from conftest import save

    import attnviz.models

    folder = save("gpt2", tmp_path / "gpt2")  # 2 layers x 4 heads, read from config.json (n_layer, n_head)
    monkeypatch.setattr(attnviz.models, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    res = runner.invoke(app, ["heatmap", "the cat", "--model", str(folder), "--layer", "2"])
    assert res.exit_code == 2 and "valid layers: 0-1" in res.output, res.output
    res = runner.invoke(app, ["capture", "the cat", "--model", str(folder), "--heads", "0,4"])
    assert res.exit_code == 2 and "valid heads: 0-3" in res.output, res.output


def test_standard_input_is_read_once(tmp_path):
    out = tmp_path / "s.png"
    res = runner.invoke(app, ["heatmap", "--file", "-", "--out", str(out)], input="the cat sat\n")
    assert res.exit_code == 0, res.output
    assert out.is_file()
    maps_file = tmp_path / "s.safetensors"
    res = runner.invoke(app, ["capture", "--file", "-", "--out", str(maps_file)], input="the cat sat\nhello\n")
    assert res.exit_code == 0, res.output
    assert AttentionMaps.load(maps_file).tokens[1][:2] == ["[CLS]", "hello"]


def test_cam_out_names_one_file_for_one_image_and_never_a_folder(tmp_path):
    from PIL import ImageDraw

    pictures = tmp_path / "pics"
    pictures.mkdir()
    for name in ("a.png", "b.png"):
        image = Image.new("RGB", (32, 32), "white")
        ImageDraw.Draw(image).rectangle((4, 4, 14, 14), fill="red")
        image.save(pictures / name)
    out = tmp_path / "cam.svg"
    res = invoke("cam", str(pictures / "a.png"), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert out.is_file() and out.read_bytes().startswith(b"<?xml")  # the panel, in the suffix's format
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.svg", "pics"] and res.output.split() == [str(out)]
    for args, needle in ((["--out", str(tmp_path / "two.png")], "2 images were given; give a folder"),
                         (["--out", str(tmp_path / "x.jpg")], "end --out with .png, .svg or .pdf"),
                         (["--out", str(tmp_path / "m.png"), "--save-map"], "give --out a folder"),
                         (["--out", str(tmp_path / "f.png"), "--format", "pdf"], "does not match --format pdf")):
        source = str(pictures) if "two" in args[1] else str(pictures / "a.png")
        res = runner.invoke(app, ["cam", source, *args])
        assert res.exit_code == 2 and needle in res.output, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.svg", "pics"]  # no folder named like a file
    res = invoke("cam", str(pictures), "--out", str(tmp_path / "figs"))  # a name without a suffix is a folder
    assert res.exit_code == 0 and (tmp_path / "figs" / "a-attn-grad-panel.png").is_file(), res.output


@pytest.mark.slow
def test_a_pipe_into_the_installed_command_is_read_once_and_nothing_else_is_printed(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRANSFORMERS_VERBOSITY"}  # as a user's shell has it
    out = tmp_path / "piped.png"
    proc = subprocess.run([sys.executable, "-m", "attnviz", "heatmap", "--file", "-", "--out", str(out)],
                          input="the cat sat\n", capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out) and proc.stderr == "" and out.is_file()
