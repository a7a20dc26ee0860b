"""Models bigger than one device: accelerate's device maps (here CPU + disk offload), per-device memory limits,
dtypes and quantised loading; `attnviz info` shows where each layer sits.

A tiny Llama is split so that layer 0 runs on the CPU and layer 1 is offloaded to disk (its weights are read
back for every forward): captures and gradient attributions must equal the single-device run exactly.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TEXTS, save
from typer.testing import CliRunner

from attnviz import attribute, capture, load_model
from attnviz.cli import app
from attnviz.errors import BadInput
from attnviz.models.placement import layer_devices, parse_device_map, parse_max_memory, summary

pytest.importorskip("accelerate")

SPLIT = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
         "model.norm": "cpu", "lm_head": "cpu"}
BERT_SPLIT = {"embeddings": "cpu", "encoder.layer.0": "disk", "encoder.layer.1": "cpu", "pooler": "cpu"}


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return save("llama", tmp_path_factory.mktemp("llama") / "m")


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return save("bert", tmp_path_factory.mktemp("bert") / "m")


def test_cpu_and_disk_offload_capture_equals_the_single_device_run(llama, bert):
    for folder, split in ((llama, SPLIT), (bert, BERT_SPLIT)):
        one = load_model(str(folder), device="cpu")
        spread = load_model(str(folder), device="cpu", device_map=json.dumps(split))
        assert "disk" in spread.model.hf_device_map.values() and spread.backend == "attnviz"
        want, got = capture(one, TEXTS[:2]), capture(spread, TEXTS[:2])
        assert got.weights.device.type == "cpu"
        assert torch.equal(got.weights, want.weights)


@pytest.mark.parametrize("method", ["integrated-gradients", "grad-rollout", "saliency"])
def test_gradients_flow_through_offloaded_layers(llama, method):
    one = load_model(str(llama), device="cpu")
    spread = load_model(str(llama), device="cpu", device_map=SPLIT)
    want = attribute(one, TEXTS[:2], method=method)
    got = attribute(spread, TEXTS[:2], method=method)
    assert want.scores.abs().sum() > 0
    assert torch.allclose(got.scores, want.scores, atol=1e-6)


def test_auto_with_a_memory_limit_offloads_and_info_says_where_each_layer_sits(llama, tmp_path):
    loaded = load_model(str(llama), device="cpu", device_map="auto", max_memory={"cpu": 20_000})
    assert set(layer_devices(loaded.model).get("encoder", {}).values()) == {"disk"}  # 20 kB holds no layer
    res = invoke("info", llama, "--device-map", json.dumps(SPLIT))
    assert res.exit_code == 0, res.output
    assert "0 cpu, 1 disk" in res.stdout and "padding" in res.stdout
    res = invoke("heatmap", "the cat sat", "--model", llama, "--device-map", "auto", "--device-max-memory",
                 '{"cpu": "20KB"}', "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("args, message", [
    (["--device-map", "everywhere"], "--device-map must be auto"),
    (["--device-map", "{not json"], "--device-map is not valid JSON"),
    (["--device-map", '{"model.layers.0": "gpu7"}'], "a device is cpu, disk"),
    (["--device-max-memory", '{"cpu": "2GiB"}'], "give --device-map auto"),
    (["--device-map", "auto", "--device-max-memory", '{"cpu": "lots"}'], "a size is bytes"),
    (["--device-map", "auto", "--device-max-memory", "[1]"], "JSON object of device -> size"),
    (["--load-in", "3bit"], "--load-in must be 8bit or 4bit"),
    (["--dtype", "float8"], "unknown dtype"),
])
def test_bad_placement_options_are_one_line_and_exit_2(llama, args, message):
    res = invoke("info", llama, *args)
    assert res.exit_code == 2 and message in res.stderr, res.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_quantised_loading_is_refused_without_cuda_saying_why(llama):
    for bits in ("8bit", "4bit"):
        res = invoke("capture", "the cat", "--model", llama, "--load-in", bits)
        assert res.exit_code == 2 and "needs a CUDA GPU" in res.stderr


def test_toys_are_never_device_mapped():
    with pytest.raises(BadInput, match="is a toy"):
        load_model("toy-encoder", device_map="auto")


def test_dtype_bfloat16_captures_close_to_float32(llama):
    one = load_model(str(llama), device="cpu")
    half = load_model(str(llama), device="cpu", dtype="bfloat16")
    assert next(half.model.parameters()).dtype == torch.bfloat16
    got, want = capture(half, TEXTS[:2]), capture(one, TEXTS[:2])
    assert got.weights.dtype == torch.float32 and (got.weights - want.weights).abs().max() < 0.02
    res = invoke("info", llama, "--dtype", "bfloat16")
    assert res.exit_code == 0 and "bfloat16" in res.stdout


def test_parsing_of_maps_and_limits():
    assert parse_device_map("sequential") == "sequential" and parse_device_map("0") == 0
    assert parse_device_map('{"a": "1", "b": "disk"}') == {"a": 1, "b": "disk"}
    assert parse_max_memory('{"0": "20GiB", "cpu": 1000}') == {0: "20GiB", "cpu": 1000}
    assert summary({0: "cuda:0", 1: "cuda:0", 2: "cpu", 3: "disk", 4: "disk"}) == "0-1 cuda:0, 2 cpu, 3-4 disk"
