"""CAM methods on tiny random ViT, DeiT, CLIP and toy ViT models loaded through the real path."""

from __future__ import annotations

import pytest
import torch
from conftest import picture, save_vision as save

from attnviz.attribution.cam import CAM_METHODS, cam, normalise
from attnviz.attribution.vision import blocks, block_input, tower
from attnviz.recording import capture
from attnviz.errors import BadInput
from attnviz.models import load_model
from attnviz.models.loaded import LoadedModel

GRID = (4, 4)  # 32-pixel inputs in 8-pixel patches
PROMPTS = ["a cat", "a dog"]


def toy_loaded() -> LoadedModel:
    from attnviz.models.toys.toy import ToyConfig, build_toy
    from attnviz.models.toys.vision import ToyImageProcessor

    torch.manual_seed(0)
    model = build_toy(ToyConfig(kind="vision", n_classes=4, image_size=32, patch_size=8, d_model=32)).eval()
    return LoadedModel(model=model, name="toy-vit", kind="vision", task="image-classification", num_layers=2,
                       num_heads=4, backend="attnviz", processor=ToyImageProcessor(32),
                       labels=["circle", "square", "triangle", "cross"])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("vision")
    loaded = {name: load_model(str(save(name, root / name)), device="cpu")
              for name in ("vit", "deit", "clip-vision", "clip", "swin")}
    loaded["toy"] = toy_loaded()
    return loaded


def images(n: int):
    return [picture(width=40 + 8 * i, height=36, seed=i) for i in range(n)]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("method", CAM_METHODS.names())
@pytest.mark.parametrize("name", ["vit", "deit", "clip-vision", "clip", "toy"])
def test_every_method_keeps_the_contract(models, name, method, batch):
    result = cam(models[name], images(batch), method=method, prompts=PROMPTS if name == "clip" else None,
                 batch_size=2)
    assert result.maps.shape == (batch, *GRID)
    assert torch.isfinite(result.maps).all()
    assert result.maps.min() >= 0 and result.maps.max() <= 1
    assert len(result.target) == len(result.boxes) == len(result.top) == batch
    if method == "heads":
        assert result.heads.shape == (batch, models[name].num_heads, *GRID)


def test_prefix_tokens_and_targets(models):
    assert cam(models["vit"], images(1), method="raw").prefix == 1
    assert cam(models["deit"], images(1), method="raw").prefix == 2  # CLS + distillation token
    by_name = cam(models["vit"], images(2), method="attn-grad", target="bird")
    assert by_name.target == ["bird", "bird"] and by_name.target_index == [2, 2]
    by_index = cam(models["vit"], images(1), method="attn-grad", target="0")
    labels, probs = zip(*by_index.top[0])
    assert by_index.target == ["cat"] and set(labels) == {"cat", "dog", "bird"}
    assert list(probs) == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert cam(models["clip-vision"], images(1)).target == ["embedding norm"]
    assert cam(models["clip-vision"], images(1), target="5").target == ["feature 5"]  # one embedding feature
    for spec, message in (("999", "this embedding has 32 features"), ("cat", "no class names, so give an index")):
        with pytest.raises(BadInput, match=message):
            cam(models["clip-vision"], images(1), target=spec)
    assert cam(models["clip"], images(1), prompts=PROMPTS, target="a dog").target == ["a dog"]


def test_a_multi_label_classifier_scores_each_class_by_its_sigmoid(models, tmp_path):
    loaded = load_model(str(save("vit-multi", tmp_path / "multi")), device="cpu")
    assert loaded.multi_label and not models["vit"].multi_label
    result = cam(loaded, images(2), method="attn-grad", top_k=3)
    with torch.no_grad():
        logits = loaded.model(**loaded.encode(images(2)).batch).logits  # (2, 3)
    for row, top in zip(logits, result.top):
        probs = [p for _, p in top]
        assert probs == pytest.approx(sorted(row.sigmoid().tolist(), reverse=True), abs=1e-6)
        assert sum(probs) != pytest.approx(1.0, abs=1e-3)  # not a softmax
    assert result.target == [top[0][0] for top in result.top]  # the default target is still the top class


def test_targets_change_gradient_maps(models):
    a = cam(models["toy"], images(1), method="attn-grad", target="0").maps
    b = cam(models["toy"], images(1), method="attn-grad", target="1").maps
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("kwargs, message", [
    ({"target": "zebra"}, "unknown target 'zebra'"), ({"target": "7"}, "out of range"),
    ({"layer": 5}, "layer 5 is out of range"), ({"method": "nope"}, "unknown cam method 'nope'; known: attn-grad"),
    ({"fusion": "median", "method": "rollout"}, "unknown head fusion"), ({"discard_ratio": 1.0}, "discard-ratio"),
])
def test_bad_options(models, kwargs, message):
    with pytest.raises(BadInput, match=message):
        cam(models["vit"], images(1), **kwargs)


def test_unsupported_models_are_refused(models, minilm):
    with pytest.raises(BadInput, match="windowed attention"):
        cam(models["swin"], images(1))
    with pytest.raises(BadInput, match="is an encoder model; attnviz cam needs a vision Transformer"):
        cam(minilm, images(1))
    with pytest.raises(BadInput, match="--prompt"):
        cam(models["clip"], images(1))


def test_raw_is_the_captured_cls_attention(models):
    pics = images(2)
    maps = capture(models["deit"], pics)
    cls_rows = maps.weights[-1][:, :, 0, 2:].mean(dim=1).reshape(2, *GRID)  # (B, gh, gw)
    assert torch.allclose(cam(models["deit"], pics, method="raw").maps, normalise(cls_rows), atol=1e-5)


def test_gradcam_matches_hidden_states_gradients(models):
    """Grad-CAM from the block-input hook equals Grad-CAM from output_hidden_states with retained grads."""
    loaded = models["vit"]
    pics = images(2)
    pixels = loaded.encode(pics).batch["pixel_values"]
    with torch.enable_grad():
        out = loaded.model(pixel_values=pixels, output_hidden_states=True)
        feats = out.hidden_states[1]  # (B, S, D) the input of block 1, the last block
        feats.retain_grad()
        target = out.logits.argmax(-1)
        out.logits[torch.arange(2), target].sum().backward()
    w = feats.grad[:, 1:].mean(dim=1, keepdim=True)  # (B, 1, D)
    expected = (feats[:, 1:] * w).sum(-1).clamp(min=0).reshape(2, *GRID).detach()
    got = cam(loaded, pics, method="gradcam", layer=-1).maps
    assert torch.allclose(got, normalise(expected), atol=1e-5)


def test_attn_grad_equals_eager_vit_with_retained_gradients(tmp_path):
    """Chefer et al.'s update on transformers' own eager ViT attentions (retain_grad), outside attnviz's kernel."""
    from transformers import ViTForImageClassification

    folder = save("vit", tmp_path / "vit")
    loaded = load_model(str(folder), device="cpu")
    pics = images(2)
    eager = ViTForImageClassification.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.enable_grad():
        out = eager(pixel_values=loaded.encode(pics).batch["pixel_values"], output_attentions=True)
        for a in out.attentions:  # (B, H, S, S) each
            a.retain_grad()
        out.logits[:, 1].sum().backward()
    b, s = out.attentions[0].shape[0], out.attentions[0].shape[-1]
    r = torch.eye(s).repeat(b, 1, 1)
    for a in out.attentions:
        r = r + (a.grad * a).clamp(min=0).mean(1) @ r
    expected = normalise(r[:, 0, 1:].reshape(b, *GRID).detach())
    assert torch.allclose(cam(loaded, pics, method="attn-grad", target=1).maps, expected, atol=1e-5)


def test_batches_agree_with_one_at_a_time(models):
    pics = images(3)
    together = cam(models["vit"], pics, method="attn-grad", batch_size=3).maps
    alone = torch.cat([cam(models["vit"], [p], method="attn-grad").maps for p in pics])
    assert torch.allclose(together, alone, atol=1e-5)


def test_hooks_are_released_after_an_error(models):
    vision = tower(models["vit"])
    block = blocks(vision)[-1]
    with pytest.raises(RuntimeError):
        with block_input(vision, -1):
            assert len(block._forward_pre_hooks) == 1
            raise RuntimeError("boom")
    assert len(block._forward_pre_hooks) == 0


def test_normalise_handles_flat_and_nan_maps():
    maps = torch.stack([torch.full((2, 2), 3.0), torch.tensor([[0.0, float("nan")], [2.0, 4.0]])])
    out = normalise(maps)
    assert out[0].eq(0).all() and out[1].tolist() == [[0.0, 0.0], [0.5, 1.0]]
