"""Model folders shaped as the real ones ship: a GPT-2 or Llama tokenizer without a pad token, a full CLIP model
whose patch size lives in its vision config, and Swin's windowed attention."""

from __future__ import annotations

import torch
import transformers as tf
from conftest import TEXTS, WORDS, picture, save
from tokenizers import Tokenizer, models, pre_tokenizers
from typer.testing import CliRunner

from attnviz import capture, load_model
from attnviz.cli import app


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _no_pad_tokenizer(eos: str, bos: str) -> tf.PreTrainedTokenizerFast:
    """A word-level tokenizer with BOS/EOS and no pad token, as GPT-2's and Llama's ship."""
    words = [w for w in WORDS if w not in ("[PAD]", "[MASK]")] + [bos, eos]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(dict.fromkeys(words))}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = tf.PreTrainedTokenizerFast(tokenizer_object=core, bos_token=bos, eos_token=eos, unk_token="[UNK]")
    assert tok.pad_token is None
    return tok


def _shipped(name: str, folder, eos: str, bos: str):
    save(name, folder)
    for extra in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        (folder / extra).unlink(missing_ok=True)
    _no_pad_tokenizer(eos, bos).save_pretrained(folder)
    return folder


def test_decoders_without_a_pad_token_pad_on_the_left_with_eos(tmp_path):
    for name, eos, bos in (("gpt2", "<|endoftext|>", "<|endoftext|>"), ("llama", "</s>", "<s>")):
        folder = _shipped(name, tmp_path / name, eos, bos)
        loaded = load_model(str(folder), device="cpu")
        assert loaded.tokenizer.padding_side == "left" and loaded.tokenizer.pad_token == eos
        assert "left" in loaded.meta["padding"] and eos in loaded.meta["padding"]
        maps = capture(loaded, ["the cat sat on the mat", "a dog"])
        assert maps.mask[1].tolist()[:4] == [0, 0, 0, 0] and maps.mask[1, -1] == 1  # padded on the left
        alone = capture(loaded, ["a dog"])
        n = int(alone.mask.sum())
        # the real tokens' rows over the real keys are what the text alone gets (positions follow the mask)
        assert torch.allclose(maps.weights[:, 1, :, -n:, -n:], alone.weights[:, 0], atol=1e-5)
    res = invoke("info", tmp_path / "gpt2")
    assert res.exit_code == 0 and "padding" in res.stdout and "left" in res.stdout
    res = invoke("heatmap", *TEXTS[:2], "--model", tmp_path / "llama", "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output


def _real_shaped_clip(folder):
    """A full CLIP model shaped like ViT-B/32 (224 pixels, 32-pixel patches: 50 tokens), but 32 wide and 2 deep."""
    config = tf.CLIPConfig(
        text_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                         vocab_size=99, max_position_embeddings=16),
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                           image_size=224, patch_size=32), projection_dim=16)
    torch.manual_seed(0)
    tf.CLIPModel(config).eval().save_pretrained(folder)
    tf.CLIPImageProcessorPil().save_pretrained(folder)  # 224 x 224, as CLIP's own
    from conftest import tokenizer

    tokenizer().save_pretrained(folder)
    return folder


def test_a_full_clip_model_names_its_patches_from_the_vision_config(tmp_path):
    folder = _real_shaped_clip(tmp_path / "clip")
    maps = capture(load_model(str(folder), device="cpu"), [picture()])
    assert maps.weights.shape[-1] == 50 and len(maps.tokens[0]) == 50
    assert maps.tokens[0][:2] == ["[CLS]", "p0,0"] and maps.tokens[0][-1] == "p6,6"
    picture().save(tmp_path / "a.png")
    for command in ("heatmap", "report"):
        res = invoke(command, tmp_path / "a.png", "--model", folder, "--out", tmp_path / command)
        assert res.exit_code == 0, res.output


def test_swin_is_refused_with_exit_2_saying_why(tmp_path):
    """Swin attends inside shifted windows, stage by stage: no per-layer map over the image exists to draw."""
    config = tf.SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[2, 2], num_heads=[2, 2], window_size=4)
    torch.manual_seed(0)
    tf.SwinForImageClassification(config).eval().save_pretrained(tmp_path / "swin")
    tf.ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "swin")
    picture().save(tmp_path / "a.png")
    for args in (["heatmap", "--out", tmp_path / "o"], ["capture", "--out", tmp_path / "o.safetensors"],
                 ["report", "--out", tmp_path / "r"]):
        res = invoke(args[0], tmp_path / "a.png", "--model", tmp_path / "swin", *args[1:])
        assert res.exit_code == 2 and "local windows of 4 x 4 patches" in res.stderr, res.output
    assert not (tmp_path / "o.safetensors").exists()
