"""`attnviz attribute` through the CLI: reports in every format, escaping, exit codes, nothing half-written."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from attnviz.cli import app

runner = CliRunner()
FAST = ["--model", "toy-encoder", "--device", "cpu", "--steps", "8"]


def run(*args):
    return runner.invoke(app, ["attribute", *args])


def test_json_report_holds_tokens_scores_target_params_model_and_version(tmp_path):
    out = tmp_path / "r.json"
    res = run("good <b>film</b>", "我喜欢", *FAST, "--method", "saliency,integrated-gradients,rollout", "--out", str(out))
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text(encoding="utf-8"))
    from attnviz import __version__

    assert data["attnviz_version"] == __version__ and data["model"] == "toy-encoder"
    assert data["methods"] == ["saliency", "integrated-gradients", "rollout"]
    assert data["params"]["integrated-gradients"] == {"steps": 8, "baseline": "pad", "rule": "gausslegendre"}
    first, second = data["examples"]
    assert first["tokens"][0] == "[CLS]" and "<" in first["tokens"]
    assert second["tokens"] == ["[CLS]", "我", "喜", "欢", "[SEP]"]
    for ex in data["examples"]:
        assert ex["target"].startswith("label class ") and 0 < ex["probability"] < 1
        assert set(ex["scores"]) == set(data["methods"])
        assert all(len(s) == len(ex["tokens"]) for s in ex["scores"].values())
        f = ex["faithfulness"]["saliency"]
        assert len(f["deletion"]) == len(ex["tokens"]) - 1  # text tokens + 1 points
        assert ex["details"]["integrated-gradients"]["steps"] == 8
    assert "integrated-gradients" in res.output and str(out) in res.output


def test_html_report_is_self_contained_and_escaped(tmp_path):
    out = tmp_path / "r.html"
    res = run("<script>alert(1)</script>", *FAST, "--method", "grad-x-input,attn-grad", "--out", str(out))
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "&lt;" in page and "attn-grad" in page and "faithfulness" in page
    assert "http://" not in page and "https://" not in page
    assert "data:image/svg+xml;base64," in page


@pytest.mark.parametrize("suffix", ["png", "svg", "pdf"])
def test_figures_one_per_input(tmp_path, suffix):
    out = tmp_path / f"fig.{suffix}"
    res = run("abc", "我喜欢你", *FAST, "--method", "occlusion,attention", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"fig-1.{suffix}", f"fig-2.{suffix}"]
    magic = {"png": b"\x89PNG", "svg": b"<?xml", "pdf": b"%PDF"}[suffix]
    assert (tmp_path / f"fig-1.{suffix}").read_bytes().startswith(magic)


@pytest.mark.parametrize("args, message", [
    (["--method", "magic"], "unknown attribution method 'magic'; known: saliency"),
    (["--target", "9"], "valid labels: 0 class 0, 1 class 1"),
    (["--target", "joy"], "unknown label 'joy'"),
    (["--reference", "hello"], "--reference does not fit"),
    (["--target-token", "2"], "--target-token does not fit"),
    (["--steps", "lots"], "--steps must be a whole number or auto"),
    (["--baseline", "noise"], "unknown baseline 'noise'"),
    (["--fusion", "sum", "--method", "rollout"], "unknown head fusion 'sum'"),
    (["--out", "x.docx"], "end --out with .html"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    args = [a if a != "x.docx" else str(tmp_path / "x.docx") for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "r.html")]
    res = run("good film", *FAST, *args)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert list(tmp_path.iterdir()) == []


def test_target_token_past_the_text_on_a_decoder(tmp_path):
    res = run("abc", "--model", "toy-decoder", "--target-token", "10", "--out", str(tmp_path / "r.json"))
    assert res.exit_code == 2 and "valid positions: 0-3" in res.output
    res = run("abc", "--model", "toy-decoder", "--target-token", "1", "--method", "grad-x-input",
              "--out", str(tmp_path / "r.json"))
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r.json").read_text())["examples"][0]["target"].startswith("next token '")


def test_minilm_is_explained_against_a_reference(tmp_path):
    out = tmp_path / "r.json"
    res = run("a cat sat on the mat", "--model", "minilm", "--reference", "a kitten is sitting", "--steps", "16",
              "--method", "integrated-gradients,rollout", "--out", str(out))
    assert res.exit_code == 0, res.output
    ex = json.loads(out.read_text())["examples"][0]
    assert ex["target"].startswith("cosine similarity to") and ex["prediction"].startswith("cosine ")
    res = run("a cat", "--model", "minilm", "--out", str(out))
    assert res.exit_code == 2 and "--reference" in res.output


def test_generated_needs_at_least_one_example(tmp_path):
    res = runner.invoke(app, ["attribute", "--generated", "0", "--model", "toy-sentiment", "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 2 and "--generated must be at least 1, not 0" in res.output
    assert list(tmp_path.iterdir()) == []


def test_masked_lm_explains_the_mask_token(tmp_path):
    from conftest import save

    folder = save("bert-mlm", tmp_path / "mlm")
    out = tmp_path / "m.json"
    res = run("the [MASK] sat on the mat", "--model", str(folder), "--method", "saliency", "--target", "dog",
              "--out", str(out))
    assert res.exit_code == 0, res.output
    ex = json.loads(out.read_text(encoding="utf-8"))["examples"][0]
    assert ex["target"] == "token 'dog' at position 2" and ex["tokens"][2] == "[MASK]"
    assert ex["prediction"] and "None" not in ex["prediction"]  # an id past the tokenizer's words is shown as <id N>
    res = run("the cat sat", "--model", str(folder), "--method", "saliency", "--out", str(tmp_path / "n.json"))
    assert res.exit_code == 2 and "every input needs a [MASK] token, or pass --target-token POS" in res.output


def test_a_model_that_routes_experts_by_token_id_exits_2_and_writes_nothing(tmp_path):
    """DeepSeek V4's hash routing reads input_ids in its layers: the attribution methods, which feed embeddings, are
    refused with one line, not a traceback from inside the model."""
    from conftest import tokenizer
    from families import build, discover

    folder = tmp_path / "ds4"
    build(discover()["deepseek_v4"]).save_pretrained(folder)
    tokenizer(token_types=False).save_pretrained(folder)
    out = tmp_path / "out" / "r.json"
    out.parent.mkdir()
    res = run("the cat sat", "--model", str(folder), "--method", "saliency", "--out", str(out))
    assert res.exit_code == 2, res.output
    assert "routes its experts by token id" in res.output and "Traceback" not in res.output
    assert list(out.parent.iterdir()) == []
