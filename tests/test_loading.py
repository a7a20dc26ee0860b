"""load_model(): folders, the local cache, refusals (pickle, remote code) and input checks."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shutil

import pytest
import torch

from attnviz.errors import BadInput, ModelNotFound, Unsafe
from attnviz.models import ModelShape, builtin_names, load_model, model_shape
from conftest import build, save, tokenizer


@pytest.fixture(autouse=True)
def empty_hub_cache(tmp_path, monkeypatch):
    """Every test sees an empty Hugging Face cache of its own, never the machine's."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save("bert", tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def bert(folder):
    return load_model(str(folder), device="cpu")


def _with_config(folder, tmp_path, **changes):
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, **changes}))
    return copy


def test_a_saved_folder_loads(bert, folder):
    assert (bert.kind, bert.task, bert.backend, bert.architecture) == ("encoder", "embedding", "attnviz", "BertModel")
    assert (bert.num_layers, bert.num_heads, bert.name) == (2, 4, str(folder))
    assert bert.tokenizer is not None and bert.device.type == "cpu"


@pytest.mark.parametrize("name, backend", [("t5", "attnviz"), ("bart", "attnviz"), ("gpt2", "attnviz"),
                                           ("bloom", "eager")])
def test_the_backend_is_the_kernel_wherever_the_model_dispatches_to_it(name, backend, tmp_path):
    loaded = load_model(str(save(name, tmp_path)), device="cpu")
    assert loaded.backend == backend


def test_a_missing_path_says_it_does_not_exist(tmp_path):
    for spec in (str(tmp_path / "nowhere"), "./no/such/folder"):
        with pytest.raises(ModelNotFound, match="does not exist") as err:
            load_model(spec, device="cpu")
        assert err.value.exit_code == 3


def test_an_unknown_name_lists_the_built_in_models():
    with pytest.raises(ModelNotFound, match="minilm") as err:
        load_model("no-such-model", device="cpu")
    assert err.value.exit_code == 3


def test_a_folder_without_config_is_not_a_model(tmp_path):
    with pytest.raises(ModelNotFound, match="config.json"):
        load_model(str(tmp_path), device="cpu")


def test_a_broken_folder_is_one_line_and_model_not_found(folder, tmp_path):
    """A truncated weights file, a config that is not JSON, an unknown architecture, a missing tokenizer."""
    def broken(name, change):
        copy = tmp_path / name
        shutil.copytree(folder, copy)
        change(copy)
        return copy

    cases = {
        "SafetensorError": broken("truncated", lambda d: (d / "model.safetensors").write_bytes(
            (d / "model.safetensors").read_bytes()[:1000])),
        "cannot read .*config.json": broken("json", lambda d: (d / "config.json").write_text("{not json")),
        "does not recognize this architecture": _with_config(folder, tmp_path / "arch", model_type="no-such-arch"),
        "tokenizer of .* has no vocabulary": broken("tok", lambda d: [(d / n).unlink() for n in ("tokenizer.json", "tokenizer_config.json")]),
    }
    for message, path in cases.items():
        with pytest.raises(ModelNotFound, match=message) as err:
            load_model(str(path), device="cpu")
        assert "\n" not in str(err.value), message


def test_pickle_weights_are_refused_unless_allowed(tmp_path):
    model = build("bert")
    model.config.save_pretrained(tmp_path)
    tokenizer().save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(Unsafe, match="pickle") as err:
        load_model(str(tmp_path), device="cpu")
    assert err.value.exit_code == 4
    loaded = load_model(str(tmp_path), device="cpu", allow_pickle=True)
    key = "embeddings.word_embeddings.weight"
    assert torch.equal(loaded.model.state_dict()[key], model.state_dict()[key])


def test_remote_code_needs_trust_and_a_pinned_revision(folder, tmp_path):
    # Names a class for another Auto class only, so loading the BertModel itself runs no foreign code.
    remote = _with_config(folder, tmp_path, auto_map={"AutoModelForCausalLM": "modeling_other.Other"})
    with pytest.raises(Unsafe, match="remote code") as err:
        load_model(str(remote), device="cpu")
    assert err.value.exit_code == 4
    with pytest.raises(Unsafe, match="revision"):
        load_model(str(remote), device="cpu", trust_remote_code=True)
    loaded = load_model(str(remote), device="cpu", trust_remote_code=True, revision="0123456789abcdef")
    assert loaded.architecture == "BertModel"


def test_trusting_remote_code_without_a_revision_is_refused(folder):
    with pytest.raises(Unsafe, match="revision") as err:
        load_model(str(folder), device="cpu", trust_remote_code=True)
    assert err.value.exit_code == 4


def _settings() -> tuple:
    """Everything a load may change for its own duration: offline flags, log level, progress bars."""
    import huggingface_hub.constants as hub_constants
    from transformers.utils import logging as hf_logging

    bars = importlib.import_module("huggingface_hub.utils.tqdm").progress_bar_states
    return (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_VERBOSITY"), hub_constants.HF_HUB_OFFLINE,
            hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(), dict(bars))


@pytest.fixture
def chatty(monkeypatch):
    """A caller that is online, logs at info level and shows progress bars; put back afterwards."""
    import huggingface_hub.constants as hub_constants
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    hf_logging.set_verbosity_info()
    hf_logging.enable_progress_bar()
    yield
    hf_logging.set_verbosity(level)
    hf_logging.enable_progress_bar() if bars else hf_logging.disable_progress_bar()


def test_offline_and_quiet_during_a_load_and_every_setting_restored_after(folder, chatty, monkeypatch, tmp_path):
    import transformers
    from transformers.utils import logging as hf_logging

    before, during = _settings(), []
    original = transformers.AutoConfig.from_pretrained

    def spy(*args, **kwargs):
        during.append(_settings())
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", spy)
    load_model(str(folder), device="cpu")
    env, _, hub_offline, level, bars, _ = during[-1]
    assert (env, hub_offline, level, bars) == ("1", True, hf_logging.ERROR, False)
    assert _settings() == before and before[3] == hf_logging.INFO and before[4] is True
    broken = _with_config(folder, tmp_path)
    for weights in broken.glob("*.safetensors"):
        weights.unlink()  # the config reads, the model does not
    with pytest.raises(ModelNotFound):  # settings are put back after an error too
        load_model(str(broken), device="cpu", online=True)
    assert (during[-1][0], during[-1][2]) == ("0", False)  # online: the hub is allowed for the call
    assert _settings() == before


def test_a_hub_id_in_the_local_cache_loads(folder, empty_hub_cache):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = empty_hub_cache / "models--org--tiny"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    loaded = load_model("org/tiny", device="cpu")
    assert (loaded.name, loaded.architecture, loaded.backend) == ("org/tiny", "BertModel", "attnviz")


def test_a_hub_id_not_in_the_cache_is_not_found():
    with pytest.raises(ModelNotFound, match="local Hugging Face cache"):
        load_model("org/absent", device="cpu")


@pytest.mark.parametrize("texts,message", [([""], "text is empty"), (["   \n\t"], "text is empty"),
                                           (["fine", " "], "text 2 is empty"), ([], "no texts given"),
                                           (["fine", 3], r"input 2 is not a text \(int\)")])
def test_empty_text_is_bad_input(bert, texts, message):
    with pytest.raises(BadInput, match=message) as err:
        bert.encode(texts)
    assert err.value.exit_code == 2


def test_long_text_is_truncated_with_a_note_or_refused(bert):
    short = dataclasses.replace(bert, max_length=8)
    long_text = "the cat sat on the mat and the dog ran far"  # 11 words + [CLS] + [SEP]
    enc = short.encode([long_text, "hello"])
    assert enc.batch["input_ids"].shape == (2, 8)
    assert enc.notes == ["input 1 was truncated from 13 to 8 tokens"]
    with pytest.raises(BadInput, match="longer than the model's maximum of 8"):
        short.encode([long_text], on_long="error")
    with pytest.raises(BadInput, match="on-long"):
        short.encode([long_text], on_long="wrap")


@pytest.mark.parametrize("name", ["bert", "gpt2", "t5", "bart", "distilbert", "vision:clip", "vision:swin"])
def test_the_shape_read_from_the_config_is_the_loaded_models(name, tmp_path):
    from conftest import save_vision

    vision = name.startswith("vision:")
    path = str(save_vision(name[7:], tmp_path) if vision else save(name, tmp_path))
    loaded = load_model(path, device="cpu")
    assert model_shape(path) == ModelShape(loaded.num_layers, loaded.num_heads)


def test_built_in_shapes_are_the_loaded_models(minilm):
    for name in builtin_names():
        loaded = minilm if name == "minilm" else load_model(name, device="cpu")
        assert model_shape(name) == ModelShape(loaded.num_layers, loaded.num_heads), name


def test_the_shape_is_read_without_building_the_model(folder, tmp_path, monkeypatch):
    import transformers

    changed = _with_config(folder, tmp_path, num_hidden_layers=5, num_attention_heads=8)
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", lambda *a, **k: pytest.fail("model built"))
    assert model_shape(str(changed)) == ModelShape(5, 8)
    assert model_shape(str(tmp_path / "nowhere")) is None  # load_model says what is wrong, not the shape check
    assert model_shape("org/absent") is None
    remote = _with_config(folder, tmp_path / "r", model_type="x-custom", auto_map={"AutoConfig": "conf.XConfig"})
    assert model_shape(str(remote)) is None  # a config class in the model's own code is never run for a shape


def test_a_device_map_is_passed_to_from_pretrained_only_when_given(folder, monkeypatch):
    import transformers

    import attnviz.models

    seen = []
    original = transformers.AutoModel.from_pretrained

    def spy(*args, **kwargs):
        seen.append(kwargs.pop("device_map", "absent"))
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", spy)
    load_model(str(folder), device="cpu")
    monkeypatch.setattr(attnviz.models, "_has_accelerate", lambda: True)
    load_model(str(folder), device="cpu", device_map="cpu")
    assert seen == ["absent", "cpu"]
    with pytest.raises(BadInput, match="toy-encoder is a toy"):
        load_model("toy-encoder", device_map="auto")
    monkeypatch.setattr(attnviz.models, "_has_accelerate", lambda: False)
    with pytest.raises(BadInput, match="pip install accelerate"):
        load_model(str(folder), device_map="auto")
