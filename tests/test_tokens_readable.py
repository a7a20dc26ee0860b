"""Tokens as people read them (models/readable.py) and scores per word or character (models/granularity.py),
on tiny models with their families' shipped kinds of tokenizer: byte-level BPE, SentencePiece, WordPiece."""

from __future__ import annotations

import json

import pytest
import torch
from shipped import byte_bpe, save_lm, sentencepiece_bpe
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.models import load_model
from attnviz.models.granularity import group_ids, group_labels, pool_attention, membership
from attnviz.models.readable import readable_ids
from attnviz.recording import capture

runner = CliRunner()
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

