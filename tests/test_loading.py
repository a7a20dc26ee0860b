"""load_model(): folders, the local cache, refusals (pickle, remote code) and input checks."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import pytest
import torch

from attnviz.errors import BadInput, ModelNotFound, Unsafe
from attnviz.models import load_model
from tiny_models import build, save, tokenizer


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


def test_offline_by_default(folder, monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    load_model(str(folder), device="cpu")
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert hub_constants.HF_HUB_OFFLINE is True


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
