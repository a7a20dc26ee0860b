"""Shared fixtures, and the one table of tiny seeded models the tests build in code (never a download).

``MODELS`` maps a name to a ``Tiny`` builder: a transformers model class, its config and what is saved
beside it (a word-level tokenizer or an image processor). ``build`` seeds and instantiates one, ``save``
writes a folder that ``load_model`` reads, ``load`` reads that folder back with a chosen attention
backend. Image classifiers for the CAM tests are named ``vision:NAME`` (``save_vision("vit", ...)``).

Tests import these with ``from conftest import save`` (pytest puts this folder on ``sys.path``):
fixtures cannot feed ``@pytest.mark.parametrize``, which needs the names at collection time, and most
tests call a builder with their own ``tmp_path`` and seed. ``toy`` builds attnviz's own toy Transformer
as a LoadedModel, as the snapshot tests use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
import transformers as tf
from PIL import Image

from attnviz.models.loaded import LoadedModel
from attnviz.models.toys.chars import BOS_ID, EOS_ID, PAD_ID, CharTokenizer
from attnviz.models.toys.toy import ToyConfig, build_toy

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
tf.utils.logging.set_verbosity_error()
tf.utils.logging.disable_progress_bar()
# Models this small gain nothing from threads; on a busy machine the hand-offs between threads cost
# a hundred times more than the arithmetic (measured: 72 s against 0.6 s for one greedy decode).
torch.set_num_threads(1)

VOCAB = 99
_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Word-level vocabularies: ids stay below VOCAB, and Chinese characters are real tokens, not [UNK].
WORDS = _SPECIAL + "the a cat dog sat on mat and ran far is was big small red blue hello world 猫 狗 在 上 我 你 他 好 大 小".split()
REPORT_WORDS = _SPECIAL + ("the a movie was not good but music wonderful cat dog sat on mat < > script alert ( ) 1 / "
                           "img src = x onerror \" 我 喜 欢 电 影").split()
SNAPSHOT_WORDS = _SPECIAL + "the a cat dog sat on mat ran far hello world big <script> & 猫 狗".split()
LABELS = {0: "negative", 1: "positive"}


def tokenizer(token_types: bool = True, words: list[str] = WORDS, **options):
    """A BERT word-level tokenizer over ``words``; without token type ids when ``token_types`` is False."""
    names = ["input_ids", "token_type_ids", "attention_mask"] if token_types else ["input_ids", "attention_mask"]
    return tf.BertTokenizer(vocab={w: i for i, w in enumerate(words)}, model_input_names=names, **options)


@dataclass(frozen=True)
class Tiny:
    """How to build one tiny model: its class, its config, and the preprocessors saved beside it."""

    model: type
    config: Callable[[], Any]
    saved: Callable[[], list] = lambda: [tokenizer(token_types=False)]


def _labelled(labels: dict[int, str], **kw) -> dict:
    return dict(id2label=labels, label2id={v: k for k, v in labels.items()}, **kw)


_TEXT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, vocab_size=VOCAB)
_IMAGE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, image_size=16,
              patch_size=4)
_VIT = dict(_IMAGE, image_size=32, patch_size=8)
_ANIMALS = _labelled({0: "cat", 1: "dog", 2: "bird"})
_SHAPES = _labelled({0: "circle", 1: "square", 2: "triangle"})


def _seq2seq(**kw):
    return dict(d_model=32, vocab_size=VOCAB, pad_token_id=0, eos_token_id=3, decoder_start_token_id=2, **kw)


def _pixels(side: int = 32):
    return lambda: [tf.ViTImageProcessorPil(size={"height": side, "width": side})]


def _clip_pixels():
    return [tf.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})]


MODELS: dict[str, Tiny] = {
    # text families and plain vision towers: the kernel, capture and loading tests
    "bert": Tiny(tf.BertModel, lambda: tf.BertConfig(**_TEXT), lambda: [tokenizer()]),
    "bert-mlm": Tiny(tf.BertForMaskedLM, lambda: tf.BertConfig(**_TEXT)),
    "gpt2": Tiny(tf.GPT2LMHeadModel, lambda: tf.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=VOCAB,
                                                           n_positions=64, pad_token_id=0)),
    # Grouped-query attention: 4 query heads share 2 key/value heads.
    "llama": Tiny(tf.LlamaForCausalLM, lambda: tf.LlamaConfig(**_TEXT, num_key_value_heads=2, pad_token_id=0,
                                                              max_position_embeddings=64)),
    "t5": Tiny(tf.T5ForConditionalGeneration, lambda: tf.T5Config(**_seq2seq(
        d_kv=8, d_ff=37, num_layers=2, num_decoder_layers=2, num_heads=4))),
    "bart": Tiny(tf.BartForConditionalGeneration, lambda: tf.BartConfig(**_seq2seq(
        encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64, bos_token_id=2))),
    "vit": Tiny(tf.ViTModel, lambda: tf.ViTConfig(**_IMAGE)),
    "clip": Tiny(tf.CLIPVisionModel, lambda: tf.CLIPVisionConfig(**_IMAGE)),
    "distilbert": Tiny(tf.DistilBertModel, lambda: tf.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=37,
                                                                       vocab_size=VOCAB)),
    "bloom": Tiny(tf.BloomForCausalLM, lambda: tf.BloomConfig(hidden_size=32, n_layer=2, n_head=4, vocab_size=VOCAB,
                                                              pad_token_id=0)),
    "gptj": Tiny(tf.GPTJForCausalLM, lambda: tf.GPTJConfig(n_embd=32, n_layer=2, n_head=4, vocab_size=VOCAB,
                                                           rotary_dim=4, n_positions=64, pad_token_id=0)),
    "deberta-v2": Tiny(tf.DebertaV2Model, lambda: tf.DebertaV2Config(**_TEXT), lambda: [tokenizer()]),
    # image classifiers with their image processors: the CAM tests
    "vision:vit": Tiny(tf.ViTForImageClassification, lambda: tf.ViTConfig(**_VIT, **_ANIMALS), _pixels()),
    # multi-label: classes are scored by independent sigmoids
    "vision:vit-multi": Tiny(tf.ViTForImageClassification, lambda: tf.ViTConfig(
        **_VIT, **_ANIMALS, problem_type="multi_label_classification"), _pixels()),
    "vision:deit": Tiny(tf.DeiTForImageClassificationWithTeacher, lambda: tf.DeiTConfig(**_VIT, **_ANIMALS),
                        lambda: [tf.DeiTImageProcessorPil(size={"height": 40, "width": 40},
                                                          crop_size={"height": 32, "width": 32})]),
    "vision:clip-vision": Tiny(tf.CLIPVisionModel, lambda: tf.CLIPVisionConfig(**_VIT), _clip_pixels),
    "vision:clip": Tiny(tf.CLIPModel, lambda: tf.CLIPConfig(
        text_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                         vocab_size=99, max_position_embeddings=16), vision_config=_VIT, projection_dim=16),
        lambda: [*_clip_pixels(), tokenizer()]),
    "vision:swin": Tiny(tf.SwinForImageClassification, lambda: tf.SwinConfig(
        image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4, **_ANIMALS),
        _pixels()),
    # report classifiers: BERT with at most 32 positions (so that long lines can be too long); ViT, 17 tokens
    "text-classifier": Tiny(tf.BertForSequenceClassification, lambda: tf.BertConfig(
        **dict(_TEXT, vocab_size=len(REPORT_WORDS)), max_position_embeddings=32, **_labelled(LABELS)),
        lambda: [tf.BertTokenizer(vocab={w: i for i, w in enumerate(REPORT_WORDS)})]),
    "image-classifier": Tiny(tf.ViTForImageClassification, lambda: tf.ViTConfig(**_IMAGE, **_SHAPES),
                             lambda: [tf.ViTImageProcessor(size={"height": 16, "width": 16})]),
    # snapshot CLI: sharper attention than the default init (0.02), a case-keeping tokenizer
    "bert-words": Tiny(tf.BertModel, lambda: tf.BertConfig(**dict(_TEXT, vocab_size=len(SNAPSHOT_WORDS)),
                                                           max_position_embeddings=64, initializer_range=0.2),
                       lambda: [tf.BertTokenizer(vocab={w: i for i, w in enumerate(SNAPSHOT_WORDS)},
                                                 do_lower_case=False)]),
}


def build(name: str, seed: int = 0) -> torch.nn.Module:
    """MODELS[name] with weights seeded by ``seed``, in eval mode."""
    tiny = MODELS[name]
    config = tiny.config()
    torch.manual_seed(seed)
    return tiny.model(config).eval()


def save(name: str, folder: Path, seed: int = 0, model: torch.nn.Module | None = None) -> Path:
    """A model folder as load_model reads it: config.json, model.safetensors and the preprocessors."""
    (build(name, seed) if model is None else model).save_pretrained(folder)
    for part in MODELS[name].saved():
        part.save_pretrained(folder)
    return folder


def save_vision(name: str, folder: Path, seed: int = 0) -> Path:
    """An image classifier of the CAM tests (``vision:NAME``) saved with its image processor."""
    return save(f"vision:{name}", folder, seed)


def load(name: str, folder: Path, attn_implementation: str) -> torch.nn.Module:
    return MODELS[name].model.from_pretrained(folder, attn_implementation=attn_implementation).eval()


def text_classifier(folder: Path, seed: int = 0) -> Path:
    """BERT, 2 layers x 4 heads, two labels, at most 32 positions."""
    return save("text-classifier", folder, seed)


def image_classifier(folder: Path, seed: int = 0) -> Path:
    """ViT on 16x16 images with 4x4 patches: 17 tokens, 2 layers x 4 heads, three labels."""
    return save("image-classifier", folder, seed)


def save_bert(folder: Path, seed: int = 0, nudge: tuple[int, float] | None = None) -> Path:
    """A 2-layer, 4-head BERT; ``nudge=(layer, amount)`` adds +-amount (seeded signs) to that layer's query."""
    model = build("bert-words", seed)
    if nudge is not None:
        signs = torch.randint(0, 2, (32, 32), generator=torch.Generator().manual_seed(0)) * 2 - 1
        with torch.no_grad():
            model.encoder.layer[nudge[0]].attention.self.query.weight += nudge[1] * signs
    return save("bert-words", folder, seed, model=model)


def picture(width: int = 48, height: int = 40, seed: int = 0) -> Image.Image:
    """A noisy RGB picture with a bright square, not square-shaped itself."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
    a[height // 4: height // 2, width // 4: width // 2] = 230
    return Image.fromarray(a, "RGB")


TEXTS = ["the cat sat on the mat", "a dog ran far", "我喜欢这部电影", "hello world, hello"]
CHARS = sorted(set("".join(TEXTS)) | set("abcdefghijklmnopqrstuvwxyz ,.!?<>&\"'/"))


def toy(kind: str = "encoder", seed: int = 0, n_layers: int = 2, **overrides) -> LoadedModel:
    """A seeded random toy of ``kind`` wrapped as attnviz wraps its own toys (not a saved folder)."""
    style = "bos" if kind == "decoder" else "cls"
    tok = CharTokenizer(CHARS, style=style, model_max_length=48)
    n_classes = overrides.pop("n_classes", 2 if kind == "encoder" else 0)
    cfg = ToyConfig(kind=kind, vocab_size=len(tok), d_model=16, n_layers=n_layers, n_heads=2, max_len=48,
                    n_classes=n_classes, **overrides)
    torch.manual_seed(seed)
    model = build_toy(cfg).eval()
    with torch.no_grad():  # GPT-2's std 0.02 init attends almost uniformly; trained models do not
        for module in model.modules():
            if hasattr(module, "qkv"):
                module.qkv.weight.mul_(10)
        if kind == "encoder-decoder":  # ends greedy decoding after a few tokens: each step is a full forward
            model.head.bias[EOS_ID] = 0.3
    task = {"encoder": "classification", "decoder": "causal-lm", "encoder-decoder": "seq2seq"}[kind]
    meta = dict(decoder_start=BOS_ID, eos=EOS_ID, pad=PAD_ID) if kind == "encoder-decoder" else {}
    return LoadedModel(model=model, name=f"toy-{kind}", kind=kind, task=task, num_layers=n_layers, num_heads=2,
                       backend="attnviz", tokenizer=tok, labels=["negative", "positive"] if n_classes else [],
                       max_length=48, source="seeded in the tests", architecture="ToyTransformer", meta=meta)


def nudge_query(loaded: LoadedModel, layer: int, amount: float) -> None:
    """Add +-``amount`` (seeded signs) to every entry of one layer's query projection, a toy's or a BERT's.

    Signs, not one constant: after a LayerNorm the inputs sum to ~0, which a constant shift cannot see.
    """
    model = loaded.model
    if hasattr(model, "encoder") and hasattr(model.encoder, "layers"):  # a toy: q is the first third of qkv
        qkv = model.encoder.layers[layer].attn.qkv.weight  # (3d, d)
        weight = qkv[: qkv.shape[1]]
    else:
        weight = model.encoder.layer[layer].attention.self.query.weight
    signs = torch.randint(0, 2, weight.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        weight += amount * signs.to(weight.dtype)


@pytest.fixture(scope="session")
def minilm():
    from attnviz.models import load_model

    return load_model("minilm", device="cpu")


CHROMIUM = "/usr/bin/chromium"  # Debian's Chromium, driven by Playwright, for every HTML output


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole run (report, notebook and generation pages alike)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()
