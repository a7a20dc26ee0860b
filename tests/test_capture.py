"""capture() and recording(): which layers, heads and stacks are kept, and that nothing is left behind."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from PIL import Image

from attnviz.attention.hf import dispatches, register
from attnviz.attention.kernel import SINK, attention
from attnviz.attention.sites import attention_sites
from attnviz.recording import capture, recording
from attnviz.errors import AttnvizError, BadInput
from attnviz.models import load_model
from conftest import build, load, save

TEXTS = ["the cat sat on the mat", "猫 在 上", "hello world"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return load_model(str(save("bert", tmp_path_factory.mktemp("bert"))), device="cpu")


def _no_sinks(model: torch.nn.Module) -> bool:
    return not any(hasattr(m, SINK) for m in model.modules())


def _eager_attentions(name: str, folder, batch: dict) -> dict:
    with torch.no_grad():
        out = load(name, folder, "eager")(**batch, output_attentions=True)
    if getattr(out, "encoder_attentions", None):
        seqs = {"encoder": out.encoder_attentions, "decoder": out.decoder_attentions, "cross": out.cross_attentions}
    else:
        seqs = {"encoder": out.attentions}
    return {k: torch.stack(v) for k, v in seqs.items()}  # (layer, B, H, Q, K)


# --- layer numbers ----------------------------------------------------------------------------------

def test_distilbert_layers_come_from_module_names(tmp_path):
    """DistilBERT's attention modules carry no layer_idx; their names say which layer they are."""
    folder = save("distilbert", tmp_path)
    loaded = load_model(str(folder), device="cpu")
    sites = attention_sites(loaded.model)
    assert [s.layer for s in sites] == [0, 1]
    assert all(getattr(s.module, "layer_idx", None) is None for s in sites)
    maps = capture(loaded, TEXTS)
    want = _eager_attentions("distilbert", folder, loaded.encode(TEXTS).batch)["encoder"]
    assert (maps.weights - want).abs().max().item() <= 1e-6


class ToyAttention(torch.nn.Module):
    """Two heads of width 4 over 8 features, computed by the kernel."""

    def __init__(self):
        super().__init__()
        self.qkv = torch.nn.Linear(8, 24)

    def split(self, x):  # (B, S, 8) -> 3 x (B, 2, S, 4)
        return self.qkv(x).view(*x.shape[:2], 3, 2, 4).permute(2, 0, 3, 1, 4)

    def forward(self, x):
        out, _ = attention(self, *self.split(x), None)  # (B, S, 2, 4)
        return out.flatten(2)


class Backwards(torch.nn.Module):
    """Runs its layers last to first: call order is the reverse of module order."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([ToyAttention(), ToyAttention()])

    def forward(self, x):
        for layer in reversed(self.layers):
            x = layer(x)
        return x


def test_layer_numbers_do_not_depend_on_call_order():
    torch.manual_seed(0)
    model, x = Backwards().eval(), torch.randn(2, 5, 8)
    with torch.no_grad(), recording(model) as rec:
        model(x)
        first = model.layers[1](x)  # layer 1 runs first and sees x itself
    for layer, seen in ((1, x), (0, first)):
        q, k, _ = model.layers[layer].split(seen)
        want = torch.softmax(q @ k.transpose(2, 3) * 0.5, dim=-1)  # (B, H, S, S), head_dim 4 -> scale 1/2
        assert torch.allclose(rec.calls[("encoder", layer)][0], want, atol=1e-6)


# --- selection, dtype, device -------------------------------------------------------------------------

def test_layer_and_head_selection(bert):
    full = capture(bert, TEXTS)
    some = capture(bert, TEXTS, layers=[0], heads=[1, 2])
    b, s = len(TEXTS), full.mask.shape[1]
    assert full.weights.shape == (2, b, 4, s, s)
    assert some.weights.shape == (1, b, 2, s, s)
    assert (some.layers, some.heads) == ([0], [1, 2])
    assert torch.equal(some.weights, full.weights[:1, :, 1:3])


def test_layers_are_labelled_in_the_order_they_are_stored(bert):
    full = capture(bert, TEXTS)
    maps = capture(bert, TEXTS, layers=[1, 0])
    assert maps.layers == [0, 1]
    assert torch.equal(maps.weights, full.weights)


def test_a_layer_out_of_range_is_bad_input(bert):
    with pytest.raises(BadInput, match="layer 5"):
        capture(bert, TEXTS, layers=[5])
    with pytest.raises(BadInput, match="head 4"):
        capture(bert, TEXTS, heads=[4])


def test_float16_storage_halves_memory_and_weights_are_on_cpu(bert):
    full = capture(bert, TEXTS)
    half = capture(bert, TEXTS, store_dtype=torch.float16)
    nbytes = [m.weights.element_size() * m.weights.nelement() for m in (full, half)]
    assert nbytes[1] * 2 == nbytes[0]
    assert half.weights.dtype == torch.float16 and half.dtype == "float16"
    assert full.weights.device.type == half.weights.device.type == full.mask.device.type == "cpu"
    assert (half.weights.float() - full.weights).abs().max().item() <= 1e-3


# --- nothing kept between calls --------------------------------------------------------------------

def test_sinks_are_removed_after_capture_and_calls_are_independent(bert):
    alone = capture(bert, TEXTS[1:2])
    capture(bert, TEXTS)
    again = capture(bert, TEXTS[1:2])
    assert _no_sinks(bert.model)
    assert torch.equal(alone.weights, again.weights)


def test_sinks_are_removed_after_an_exception_inside_recording(bert):
    with pytest.raises(RuntimeError, match="boom"):
        with recording(bert.model) as rec:
            assert all(hasattr(s.module, SINK) for s in rec.sites)
            raise RuntimeError("boom")
    assert _no_sinks(bert.model)


def test_sinks_are_removed_when_the_model_fails_mid_capture(bert, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("layer 1 failed")

    monkeypatch.setattr(bert.model.encoder.layer[1], "forward", boom)
    with pytest.raises(RuntimeError, match="layer 1 failed"):
        capture(bert, TEXTS)
    assert _no_sinks(bert.model)


# --- stacks and backends --------------------------------------------------------------------------------

def test_encoder_decoder_keeps_three_stacks(tmp_path):
    folder = save("t5", tmp_path)
    loaded = load_model(str(folder), device="cpu")
    assert loaded.backend == "attnviz"
    loaded = dataclasses.replace(loaded, max_length=10)  # a random T5 never says EOS: decode 9 steps, not 64
    maps = capture(loaded, TEXTS)
    want = _eager_attentions("t5", folder, loaded.encode(TEXTS).batch)
    for stack, weights in want.items():
        assert (maps.stack(stack) - weights).abs().max().item() <= 1e-6, stack
    t = maps.decoder_mask.shape[1]
    assert maps.cross.shape == (2, len(TEXTS), 4, t, maps.mask.shape[1])


@pytest.mark.parametrize("name", ["bloom", "gptj", "deberta-v2"])
def test_captured_weights_equal_eager_whichever_backend_the_preflight_picked(name, tmp_path):
    """These families have moved between the kernel and the eager fallback across transformers releases;
    what holds on every release is that the weights are eager's and the backend says how they were got."""
    folder = save(name, tmp_path)
    loaded = load_model(str(folder), device="cpu")
    assert loaded.backend in ("attnviz", "eager")
    assert loaded.backend == ("attnviz" if dispatches(loaded.model, lambda: loaded.model(**loaded.probe_batch()))
                              else "eager")
    maps = capture(loaded, TEXTS)
    want = _eager_attentions(name, folder, loaded.encode(TEXTS).batch)["encoder"]
    assert maps.weights.shape[0] == loaded.num_layers == 2
    assert maps.backend == loaded.backend
    assert (maps.weights - want).abs().max().item() <= 1e-6


def test_a_layer_count_mismatch_is_an_error_not_an_empty_result(bert, tmp_path):
    with pytest.raises(AttnvizError, match="captured 2"):
        capture(dataclasses.replace(bert, num_layers=3), TEXTS)
    eager = load_model(str(save("bert", tmp_path)), device="cpu")
    eager.model.set_attn_implementation("eager")  # the fallback path, whatever the preflight chose
    with pytest.raises(AttnvizError, match="2 layers"):
        capture(dataclasses.replace(eager, backend="eager", num_layers=3), TEXTS)


def test_a_model_that_never_calls_the_kernel_is_an_error(bert):
    sdpa = build("bert")  # loaded with transformers' own attention: no sink is ever called
    assert sdpa.config._attn_implementation != register()
    with pytest.raises(AttnvizError, match="no attention was captured"):
        capture(dataclasses.replace(bert, model=sdpa), TEXTS)


# --- the public function ----------------------------------------------------------------------------


def test_the_public_capture_is_the_function_after_the_recording_module_is_imported():
    import attnviz
    import attnviz.recording  # what attribution, the CLI or a user's own import does

    assert attnviz.capture is attnviz.recording.capture
    loaded = load_model("toy-sentiment", device="cpu")
    maps = attnviz.capture(loaded, ["好 good"])
    assert isinstance(maps, attnviz.AttentionMaps) and maps.weights.shape[1] == 1


def test_capture_takes_one_text_and_refuses_bad_choices_with_bad_input():
    loaded = load_model("toy-sentiment", device="cpu")
    assert capture(loaded, "好 good").weights.shape[1] == 1  # one text is a batch of one, not of characters
    assert capture(loaded, ["hi"], store_dtype="float16").weights.dtype == torch.float16
    for kwargs, message in (({"heads": [-1]}, "head -1 is out of range; valid heads: 0-3"),
                            ({"layers": []}, "no layers chosen"),
                            ({"store_dtype": "int8"}, "store_dtype must be float32 or float16")):
        with pytest.raises(BadInput, match=message):
            capture(loaded, ["hi"], **kwargs)


def test_the_readme_python_example_runs(tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    code = readme.split("## Python API", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    from attnviz.models.toys.data import generate

    Image.fromarray(generate("toy-shapes", 1, 0)[0]["image"]).save("shape.png")
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["again"].weights.shape == scope["maps"].weights.shape and scope["one"].weights.shape[1] == 1
    assert scope["attr"].scores.shape[0] == 2
    assert scope["cams"].maps.shape == (1, 8, 8) and scope["cams"].top[0][0][0] in scope["shapes"].labels
    assert scope["attnviz"].cam(scope["shapes"], "shape.png").maps.shape == (1, 8, 8)  # one path: a batch of one
