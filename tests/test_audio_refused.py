"""Speech and audio models are refused with exit 2 and one line that says why, before their weights load:
attnviz explains text and image models. Tiny Whisper and Wav2Vec2 folders built from their configs, and a
model whose only sign of audio is its feature extractor."""

from __future__ import annotations

import json

import pytest
import torch
import transformers as tf
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.errors import BadInput
from attnviz.models import load_model
from conftest import save

runner = CliRunner()


def _whisper(folder):
    config = tf.WhisperConfig(vocab_size=64, num_mel_bins=8, d_model=16, encoder_layers=1, decoder_layers=1,
                              encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=16,
                              decoder_ffn_dim=16, max_source_positions=16, max_target_positions=16,
                              pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
                              suppress_tokens=[], begin_suppress_tokens=[])
    return tf.WhisperForConditionalGeneration(config)


def _wav2vec2(folder):
    config = tf.Wav2Vec2Config(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=16, conv_dim=(8, 8), conv_stride=(2, 2), conv_kernel=(3, 3),
                               num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2)
    return tf.Wav2Vec2ForCTC(config)


@pytest.fixture(scope="module", params=["whisper", "wav2vec2"])
def folder(request, tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp(request.param)
    {"whisper": _whisper, "wav2vec2": _wav2vec2}[request.param](path).eval().save_pretrained(path)
    return path


@pytest.mark.parametrize("command", [["info"], ["heatmap", "hello"], ["attribute", "hello"]])
def test_an_audio_model_is_refused_with_exit_2_and_one_line(folder, command, tmp_path):
    res = runner.invoke(app, [*command, "--model", str(folder), "--device", "cpu",
                              *(["--out", str(tmp_path / "out.png")] if command[0] == "heatmap" else []),
                              *(["--out", str(tmp_path / "out.json")] if command[0] == "attribute" else [])])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.output and "KeyError" not in res.output
    assert "is a speech or audio model that reads (or makes) audio" in lines[0]
    assert "attnviz explains text and image models" in lines[0] and "is not supported" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_the_refusal_comes_before_the_weights_load(folder, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((folder / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not weights")  # loading these would fail with exit 3
    with pytest.raises(BadInput, match="reads \\(or makes\\) audio") as err:
        load_model(str(broken), device="cpu")
    arch = json.loads((folder / "config.json").read_text())["architectures"][0]
    assert arch in str(err.value)


def test_a_feature_extractor_for_sound_marks_audio_too(tmp_path):
    folder = save("bert", tmp_path / "m")
    assert load_model(str(folder), device="cpu").task == "embedding"  # a text model is not refused
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"feature_extractor_type": "Wav2Vec2FeatureExtractor", "sampling_rate": 16000, "feature_size": 1}))
    with pytest.raises(BadInput, match="its feature extractor reads sound sampled at 16000 Hz"):
        load_model(str(folder), device="cpu")
