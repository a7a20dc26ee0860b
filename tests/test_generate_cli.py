"""`attnviz generate` through the CLI: the JSON's exact keys, an escaped offline HTML page, figures, exit codes."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from attnviz.cli import app

torch.set_num_threads(1)
runner = CliRunner()
TOY = ["--model", "toy-induction", "--device", "cpu"]


def run(*args):
    return runner.invoke(app, ["generate", *args])


def test_json_has_exactly_the_documented_keys_and_a_chinese_prompt_end_to_end(tmp_path):
    out = tmp_path / "g.json"
    res = run("猫狗鱼鸟猫狗", *TOY, "--max-new-tokens", "2", "--method", "attention,integrated-gradients",
              "--steps", "8", "--contrast", "鱼山", "--out", str(out))
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert set(doc) == {"model", "prompt", "tokens", "prompt_length", "steps", "scores"}
    assert doc["prompt"] == "猫狗鱼鸟猫狗" and doc["tokens"] == ["[BOS]", *"猫狗鱼鸟猫狗鱼鸟"] and doc["prompt_length"] == 7
    assert [s["token"] for s in doc["steps"]] == ["鱼", "鸟"] and [s["position"] for s in doc["steps"]] == [7, 8]
    for s in doc["steps"]:
        assert {"token", "position", "probability", "entropy", "contrast", "completeness_gap"} == set(s)
    assert doc["steps"][0]["contrast"] == pytest.approx(0.0, abs=1e-6) and doc["steps"][1]["contrast"] > 0.5
    assert set(doc["scores"]) == {"attention", "integrated-gradients"}
    assert [len(r) for r in doc["scores"]["attention"]] == [7, 8]
    assert "鱼" in res.output and str(out) in res.output


def test_html_is_offline_escaped_and_holds_every_prompt(tmp_path):
    out = tmp_path / "g.html"
    hostile = "</script><img src=x>ab"
    res = run(hostile, "abcab", *TOY, "--max-new-tokens", "2", "--method", "attention,rollout", "--out", str(out))
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "<img" not in page and page.count("</script>") == 2  # the data block's and the code's own
    assert "http:" not in page and "https:" not in page
    assert page.count('<section data-ex=') == 2 and page.count('class="mx"') == 4  # 2 prompts x 2 methods


@pytest.mark.parametrize("fmt,magic", [("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_figures_one_file_per_prompt(fmt, magic, tmp_path):
    out = tmp_path / f"g.{fmt}"
    res = run("abcab", "猫狗鱼猫", *TOY, "--max-new-tokens", "2", "--method", "attention", "--out", str(out))
    assert res.exit_code == 0, res.output
    for i in (1, 2):
        assert (tmp_path / f"g-{i}.{fmt}").read_bytes().startswith(magic)


def test_a_forced_answer_and_a_span(tmp_path):
    out = tmp_path / "g.json"
    res = run("abcdab", *TOY, "--answer", "cd", "--target-span", "0-1", "--method", "saliency", "--out", str(out))
    assert res.exit_code == 0, res.output
    (step,) = json.loads(out.read_text(encoding="utf-8"))["steps"]
    assert step["token"] == "cd" and step["span"] == [0, 1] and step["position"] == 8


@pytest.mark.parametrize("args,words", [
    (["--model", "toy-encoder"], "causal language model"),
    (["--max-new-tokens", "0"], "--max-new-tokens"),
    (["--answer", "cd", "--target-span", "1-4"], "within 0-1"),
    (["--contrast", " "], "--contrast"),
    (["--method", "attention-flow"], "choose from"),
    (["--out", "g.txt"], ".json"),
])
def test_bad_input_exits_2_naming_what_fits(args, words, tmp_path):
    res = run("abcab", "--device", "cpu", *(["--model", "toy-induction"] if "--model" not in args else []), *args,
              *([] if "--out" in args else ["--out", str(tmp_path / "g.json")]))
    assert res.exit_code == 2, res.output
    assert words in res.output
    assert not list(tmp_path.iterdir())
