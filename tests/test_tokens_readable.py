"""Tokens as people read them (models/readable.py) and scores per word or character (models/granularity.py),
on tiny models with their families' shipped kinds of tokenizer: byte-level BPE, SentencePiece, WordPiece."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from shipped import byte_bpe, save_lm, sentencepiece_bpe
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.models import load_model
from attnviz.models.granularity import group_ids, group_labels, pool_attention, membership
from attnviz.models.readable import is_cjk_char, readable_ids, style_of
from attnviz.recording import capture

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
CHINESE = "今天我喜欢这部电影 Parisian capital"


def _text_of(labels: list[str], bounds: str) -> str:
    """The text the labels stand for, pieces that only finish a character left out."""
    kept = [lab for lab, b in zip(labels, bounds) if not (b == "+" and lab.startswith("+"))]
    return "".join(kept).replace("␣", " ")


def test_byte_level_pieces_read_as_text_and_a_split_character_is_one_label():
    tok = byte_bpe()
    ids = tok(CHINESE)["input_ids"]
    read = readable_ids(tok, ids)
    assert read.pieces == tok.convert_ids_to_tokens(ids)  # the raw pieces kept beside the labels
    assert any(p != lab for p, lab in zip(read.pieces, read.labels)) and "Ġ" not in "".join(read.labels)
    assert "␣Parisian" in group_labels(read.labels, read.bounds, group_ids(read.bounds, "word"))
    assert _text_of(read.labels, read.bounds) == CHINESE
    # 今 is three byte tokens: the first shows the character, the others say they finish it
    assert read.labels[:3] == ["今", "+今", "+今"] and read.bounds[:3] == "W++"
    assert group_labels(read.labels, read.bounds, group_ids(read.bounds, "char"))[:2] == ["今", "天"]


def test_sentencepiece_spaces_and_byte_fallback_read_as_text():
    tok = sentencepiece_bpe()
    text = "我喜欢 the movie"
    ids = tok(text)["input_ids"]
    read = readable_ids(tok, ids)
    assert read.labels[0] == "<s>" and read.pieces[0] == "<s>"  # special tokens stay as they are
    assert "␣movie" in group_labels(read.labels, read.bounds, group_ids(read.bounds, "word"))
    assert _text_of(read.labels[1:], read.bounds[1:]).strip() == text
    assert not any(lab.startswith("<0x") for lab in read.labels)


def test_wordpiece_tokens_are_left_as_they_are(tmp_path):
    from conftest import tokenizer

    tok = tokenizer()
    ids = tok("the cat sat on the mat")["input_ids"]
    read = readable_ids(tok, ids)
    assert read.labels == tok.convert_ids_to_tokens(ids) == read.pieces
    assert set(read.bounds) == {"W"}


def test_group_ids_and_labels_by_hand():
    labels, bounds = ["<s>", "␣un", "believ", "able", "我", "+我", "欢"], "WWCCW+W"
    assert group_ids(bounds, "token") == [0, 1, 2, 3, 4, 5, 6]
    assert group_ids(bounds, "char") == [0, 1, 2, 3, 4, 4, 5]
    assert group_ids(bounds, "word") == [0, 1, 1, 1, 2, 2, 3]
    assert group_labels(labels, bounds, group_ids(bounds, "word")) == ["<s>", "␣unbelievable", "我", "欢"]
    assert group_labels(["[CLS]", "play", "##ing"], "WWC", [0, 1, 1]) == ["[CLS]", "playing"]


def test_pooled_attention_sums_keys_and_averages_queries():
    w = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3]])  # (Q, K)
    m = membership([0, 1, 1], 2)  # tokens 1 and 2 are one word
    pooled = pool_attention(w, m)
    want = torch.tensor([[1.0, 0.0], [(0.2 + 0.1) / 2, (0.8 + 0.9) / 2]])
    assert torch.allclose(pooled, want) and torch.allclose(pooled.sum(-1), torch.ones(2))


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    return save_lm("gpt2", tmp_path_factory.mktemp("gpt2"))


def test_captured_maps_carry_readable_tokens_and_raw_pieces(gpt2, tmp_path):
    maps = capture(load_model(str(gpt2)), [CHINESE])
    assert maps.tokens[0][:2] == ["今", "+今"] and maps.pieces[0][:2] == byte_bpe().convert_ids_to_tokens(
        byte_bpe()(CHINESE)["input_ids"])[:2]
    maps.save(tmp_path / "m.safetensors")
    from attnviz.maps import AttentionMaps

    back = AttentionMaps.load(tmp_path / "m.safetensors")
    assert back.pieces == maps.pieces and back.bounds == maps.bounds


@pytest.mark.parametrize("granularity,count", [("token", 13), ("char", 9), ("word", 7)])
def test_heatmap_granularity_pools_the_drawn_map(gpt2, tmp_path, granularity, count):
    from attnviz.report.capture import CaptureConfig, HeatmapConfig, write_heatmap_files

    config = HeatmapConfig(CaptureConfig((CHINESE,), model=str(gpt2)), out=tmp_path / "h.png",
                           granularity=granularity)
    maps = write_heatmap_files(config).maps
    assert maps.weights.shape[-1] == count and len(maps.tokens[0]) == count
    assert torch.allclose(maps.weights.sum(-1), torch.ones(()), atol=1e-5)  # rows still sum to one
    if granularity == "word":
        assert maps.tokens[0] == ["今", "天", "我", "喜欢", "这部电影", "␣Parisian", "␣capital"]


def test_attribution_json_keeps_pieces_and_granularity_sums_scores(gpt2, tmp_path):
    res = runner.invoke(app, ["attribute", CHINESE, "--model", str(gpt2), "--method", "grad-x-input",
                              "--no-faithfulness", "--out", str(tmp_path / "a.json")])
    assert res.exit_code == 0, res.output
    one = json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))["examples"][0]
    assert one["tokens"][:2] == ["今", "+今"] and len(one["pieces"]) == len(one["tokens"])
    res = runner.invoke(app, ["attribute", CHINESE, "--model", str(gpt2), "--method", "grad-x-input",
                              "--no-faithfulness", "--granularity", "word", "--out", str(tmp_path / "w.json")])
    assert res.exit_code == 0, res.output
    words = json.loads((tmp_path / "w.json").read_text(encoding="utf-8"))["examples"][0]
    assert words["tokens"] == ["今", "天", "我", "喜欢", "这部电影", "␣Parisian", "␣capital"]
    total = sum(one["scores"]["grad-x-input"])
    assert sum(words["scores"]["grad-x-input"]) == pytest.approx(total, abs=1e-5)



# The byte-level BPE model shipped in the clone (scripts/make_sample_model.py), as the README's examples use it.
SAMPLE = ROOT / "sample_inputs" / "gpt2-zh"
ZH = "我喜欢这部电影"
# each character over 2 or 3 byte tokens: the first reads the character, the others "+" it
ZH_LABELS = ["我", "+我", "喜", "+喜", "欢", "+欢", "这", "+这", "部", "+部", "+部", "电", "+电", "+电", "影", "+影", "+影"]


def _readable_chinese(labels: list[str]) -> bool:
    return all(len(lab.removeprefix("+")) == 1 and is_cjk_char(lab[-1]) for lab in labels)


def test_the_shipped_sample_model_is_byte_level_bpe_with_chinese_split_over_bytes():
    loaded = load_model(str(SAMPLE), device="cpu")
    tok = loaded.tokenizer
    assert style_of(tok) == "bytes" and type(loaded.model).__name__ == "GPT2LMHeadModel"
    ids = tok(ZH)["input_ids"]
    pieces = tok.convert_ids_to_tokens(ids)
    assert len(pieces) == len(ZH_LABELS) > 2 * len(ZH)  # no character is one token
    assert not any(is_cjk_char(c) for i in ids for c in tok.decode([i]))  # no token alone is a whole character
    assert tok.decode(ids) == ZH
    assert (SAMPLE / "tokenizer.json").exists() and (SAMPLE / "model.safetensors").stat().st_size < 300_000


def test_the_shipped_sample_model_captures_readable_labels_and_raw_pieces(tmp_path):
    loaded = load_model(str(SAMPLE), device="cpu")
    maps = capture(loaded, [ZH])
    assert maps.tokens[0] == ZH_LABELS and _readable_chinese(maps.tokens[0])
    assert maps.pieces[0] == loaded.tokenizer.convert_ids_to_tokens(loaded.tokenizer(ZH)["input_ids"])
    assert maps.pieces[0][:2] == ["æĪ", "ĳ"]  # 我 is the bytes E6 88 91, spelled as GPT-2 spells bytes
    maps.save(tmp_path / "m.safetensors")
    from attnviz.maps import AttentionMaps

    assert AttentionMaps.load(tmp_path / "m.safetensors").tokens == maps.tokens


def test_the_shipped_sample_model_runs_the_readme_examples(tmp_path):
    for extra, name in (([], "head.png"), (["--view", "layer", "--layer", "0"], "layer.png"),
                        (["--granularity", "char"], "char.png")):
        res = runner.invoke(app, ["heatmap", ZH, "--model", str(SAMPLE), *extra, "--out", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    res = runner.invoke(app, ["capture", ZH, "--model", str(SAMPLE), "--out", str(tmp_path / "c.safetensors")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["heatmap", "--from", str(tmp_path / "c.safetensors"), "--granularity", "char",
                              "--out", str(tmp_path / "from.png")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["attribute", ZH, "--model", str(SAMPLE), "--method", "grad-x-input",
                              "--no-faithfulness", "--out", str(tmp_path / "a.json")])
    assert res.exit_code == 0, res.output
    one = json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))["examples"][0]
    assert one["tokens"] == ZH_LABELS and one["pieces"][:2] == ["æĪ", "ĳ"]
    res = runner.invoke(app, ["attribute", ZH, "--model", str(SAMPLE), "--method", "grad-x-input",
                              "--no-faithfulness", "--granularity", "char", "--out", str(tmp_path / "c.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))["examples"][0]["tokens"] == list(ZH)


@pytest.mark.slow
def test_the_shipped_sample_model_is_what_the_script_writes(tmp_path):
    """scripts/make_sample_model.py rebuilds the folder: the same config and tokenizer, byte for byte, and the
    same model to float rounding (another CPU may sum in another order). Rounding moves the attention's key bias
    most (~2e-3 on another CPU): it gets no gradient (a softmax ignores a shift), so Adam steps on rounding noise;
    it changes no output, so the outputs are compared tightly and the weights loosely."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_sample_model.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in SAMPLE.iterdir())
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), name
    made, shipped = load_file(tmp_path / "model.safetensors"), load_file(SAMPLE / "model.safetensors")
    assert made.keys() == shipped.keys()
    assert all(torch.allclose(made[k], shipped[k], atol=1e-2) for k in made)
    import transformers as tf

    ids = tf.AutoTokenizer.from_pretrained(SAMPLE)("The movie was 我喜欢这部电影", return_tensors="pt")["input_ids"]
    logits = [tf.GPT2LMHeadModel.from_pretrained(folder).eval()(ids).logits for folder in (tmp_path, SAMPLE)]
    assert torch.allclose(*logits, atol=1e-3)
