"""Tiny seeded classifiers for the report tests, built in code and saved as model folders."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers as tf

tf.utils.logging.set_verbosity_error()

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "the a movie was not good but music wonderful cat dog sat on mat < > script alert ( ) 1 / img src = x "
    "onerror \" 我 喜 欢 电 影"
).split()
LABELS = {0: "negative", 1: "positive"}


def text_classifier(folder: Path, seed: int = 0) -> Path:
    """BERT, 2 layers x 4 heads, two labels, at most 32 positions (so that long lines can be too long)."""
    cfg = tf.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                        vocab_size=len(WORDS), max_position_embeddings=32, id2label=LABELS,
                        label2id={v: k for k, v in LABELS.items()})
    torch.manual_seed(seed)
    tf.BertForSequenceClassification(cfg).eval().save_pretrained(folder)
    tf.BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)}).save_pretrained(folder)
    return folder


def image_classifier(folder: Path, seed: int = 0) -> Path:
    """ViT on 16x16 images with 4x4 patches: 17 tokens, 2 layers x 4 heads, three labels."""
    labels = {0: "circle", 1: "square", 2: "triangle"}
    cfg = tf.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                       image_size=16, patch_size=4, id2label=labels, label2id={v: k for k, v in labels.items()})
    torch.manual_seed(seed)
    tf.ViTForImageClassification(cfg).eval().save_pretrained(folder)
    tf.ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
    return folder
