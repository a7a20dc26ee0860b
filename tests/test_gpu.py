"""On a CUDA GPU: every command runs with --device cuda, captures and attributions equal the CPU's, a device map
spreads a model over GPU and CPU, and --load-in quantises. Skipped where torch sees no GPU (`-m gpu` runs them)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TEXTS, picture, save, save_vision
from typer.testing import CliRunner

from attnviz import attribute, capture, load_model
from attnviz.cli import app

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu")
    return {"llama": save("llama", root / "llama"), "bert": save("text-classifier", root / "bert"),
            "t5": save("t5", root / "t5"), "vit": save_vision("vit", root / "vit")}


@pytest.mark.parametrize("name", ["llama", "bert", "t5"])
def test_capture_on_cuda_equals_the_cpu(folders, name):
    cpu, gpu = (load_model(str(folders[name]), device=d) for d in ("cpu", "cuda"))
    assert gpu.device.type == "cuda" and gpu.backend == "attnviz"
    want, got = capture(cpu, TEXTS[:2]), capture(gpu, TEXTS[:2])
    assert got.weights.device.type == "cpu"  # weights come back to the CPU layer by layer
    assert torch.allclose(got.weights, want.weights, atol=1e-5)


def test_attribution_on_cuda_equals_the_cpu(folders):
    cpu, gpu = (load_model(str(folders["bert"]), device=d) for d in ("cpu", "cuda"))
    for method in ("integrated-gradients", "attn-grad"):
        want, got = (attribute(m, TEXTS[:2], method=method) for m in (cpu, gpu))
        assert torch.allclose(got.scores.cpu(), want.scores, atol=1e-4)


def test_a_device_map_over_gpu_and_cpu_equals_one_device(folders):
    split = {"model.embed_tokens": 0, "model.rotary_emb": 0, "model.layers.0": 0, "model.layers.1": "cpu",
             "model.norm": "cpu", "lm_head": "cpu"}
    one = load_model(str(folders["llama"]), device="cpu")
    spread = load_model(str(folders["llama"]), device_map=json.dumps(split))
    assert torch.allclose(capture(spread, TEXTS[:2]).weights, capture(one, TEXTS[:2]).weights, atol=1e-5)
    got = attribute(spread, TEXTS[:2], method="integrated-gradients")  # gradients cross GPU -> CPU -> GPU
    want = attribute(one, TEXTS[:2], method="integrated-gradients")
    assert torch.allclose(got.scores.cpu(), want.scores, atol=1e-4)
    res = invoke("info", folders["llama"], "--device-map", json.dumps(split))
    assert res.exit_code == 0 and "0 cuda:0, 1 cpu" in res.stdout


def test_bfloat16_and_quantised_loading_capture(folders):
    pytest.importorskip("bitsandbytes")
    for options in ({"dtype": "bfloat16", "device": "cuda"}, {"load_in": "8bit"}, {"load_in": "4bit"}):
        maps = capture(load_model(str(folders["llama"]), **options), TEXTS[:2])
        assert torch.isfinite(maps.weights).all() and maps.weights.sum(-1)[maps.mask.bool()[:, None, None]].gt(0).all()


def test_every_command_runs_with_device_cuda(folders, tmp_path):
    picture().save(tmp_path / "a.png")
    (tmp_path / "texts.txt").write_text("the cat sat\na dog ran far\n", encoding="utf-8")
    runs = [("heatmap", "the cat sat", "--model", folders["bert"], "--out", tmp_path / "h"),
            ("capture", "the cat sat", "--model", folders["t5"], "--out", tmp_path / "c.safetensors"),
            ("attribute", "the cat sat", "--model", folders["bert"], "--out", tmp_path / "a.json"),
            ("cam", tmp_path / "a.png", "--model", folders["vit"], "--out", tmp_path / "cam"),
            ("report", tmp_path / "texts.txt", "--model", folders["bert"], "--out", tmp_path / "r"),
            ("generate", "the cat", "--model", folders["llama"], "--out", tmp_path / "g.json"),
            ("info", folders["llama"])]
    for args in runs:
        res = invoke(*args, "--device", "cuda")
        assert res.exit_code == 0, f"{args[0]}: {res.output}"


def test_generated_steps_on_cuda_equal_the_cpu(folders):
    from attnviz.attribution.generation import attribute_generation

    cpu, gpu = (load_model(str(folders["llama"]), device=d) for d in ("cpu", "cuda"))
    methods = ["attention", "saliency", "integrated-gradients", "attn-grad"]  # one pass, shared gradients, rows
    want, got = (attribute_generation(m, ["the cat sat", "a dog"], methods=methods, answer="on the mat", steps=8)
                 for m in (cpu, gpu))
    for w, g in zip(want, got):
        assert [s["token"] for s in g.steps] == [s["token"] for s in w.steps]
        for m in methods:
            for a, b in zip(g.scores[m], w.scores[m]):
                assert abs(a - b).max() <= 1e-4 * max(abs(b).max(), 1e-6), m
