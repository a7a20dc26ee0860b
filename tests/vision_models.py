"""Tiny seeded random vision models for the CAM tests, saved as model folders with their image processor.

Each folder loads through the real path (``load_model(folder)`` -> models/hf.py), never downloads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import transformers as tf
from PIL import Image

from tiny_models import tokenizer

_VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, image_size=32,
            patch_size=8)
_LABELS = {"id2label": {0: "cat", 1: "dog", 2: "bird"}, "label2id": {"cat": 0, "dog": 1, "bird": 2}}


def _vit():
    return tf.ViTForImageClassification(tf.ViTConfig(**_VIT, **_LABELS)), tf.ViTImageProcessorPil(
        size={"height": 32, "width": 32})


def _vit_multi():  # a multi-label classifier: classes are scored by independent sigmoids
    config = tf.ViTConfig(**_VIT, **_LABELS, problem_type="multi_label_classification")
    return tf.ViTForImageClassification(config), tf.ViTImageProcessorPil(size={"height": 32, "width": 32})


def _deit():
    model = tf.DeiTForImageClassificationWithTeacher(tf.DeiTConfig(**_VIT, **_LABELS))
    return model, tf.DeiTImageProcessorPil(size={"height": 40, "width": 40}, crop_size={"height": 32, "width": 32})


def _clip_vision():
    model = tf.CLIPVisionModel(tf.CLIPVisionConfig(**_VIT))
    return model, tf.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


def _clip():
    text = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, vocab_size=99,
                max_position_embeddings=16)
    config = tf.CLIPConfig(text_config=text, vision_config=_VIT, projection_dim=16)
    return tf.CLIPModel(config), tf.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


def _swin():
    config = tf.SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4,
                           **_LABELS)
    return tf.SwinForImageClassification(config), tf.ViTImageProcessorPil(size={"height": 32, "width": 32})


BUILDERS = {"vit": _vit, "vit-multi": _vit_multi, "deit": _deit, "clip-vision": _clip_vision, "clip": _clip, "swin": _swin}


def save(name: str, folder: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model, processor = BUILDERS[name]()
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    if name == "clip":
        tokenizer().save_pretrained(folder)
    return folder


def picture(width: int = 48, height: int = 40, seed: int = 0) -> Image.Image:
    """A noisy RGB picture with a bright square, not square-shaped itself."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
    a[height // 4: height // 2, width // 4: width // 2] = 230
    return Image.fromarray(a, "RGB")
