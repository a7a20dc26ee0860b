"""The built-in toys: generators and their ground truth, shipped accuracy, attention checks, training, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from attnviz.recording import capture
from attnviz.cli import app
from attnviz.models import load_model
from attnviz.models.toys.data import generate
from attnviz.models.toys.data.shapes import CLASSES
from attnviz.models.toys.recipes import RECIPES
from attnviz.models.toys.store import load_toy
from attnviz.models.toys.train import accuracy, train
from attnviz.models.toys.zoo import RANDOM, TRAINED, weights_path
from attnviz.attribution.probes import antidiagonal_scores, induction_scores

FRESH = 4242  # a seed neither training nor the shipped held-out measurement used
runner = CliRunner()


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


@pytest.mark.parametrize("name", TRAINED)
def test_generators_are_deterministic_for_a_seed(name):
    first, again, other = generate(name, 12, 7), generate(name, 12, 7), generate(name, 12, 8)
    assert all(same(a, b) for a, b in zip(first, again))
    assert not all(same(a, b) for a, b in zip(first, other))


def test_sentiment_ground_truth_points_at_the_deciding_words():
    loaded = load_model("toy-sentiment", device="cpu")
    examples = generate("toy-sentiment", 200, 1)
    assert {e["lang"] for e in examples} == {"en", "zh"} and any(e["negated"] for e in examples)
    assert {e["label_name"] for e in examples} == set(loaded.labels) == {"negative", "neutral", "positive"}
    positive = ("good", "great", "nice", "happy", "fine", "lovely", "好", "棒", "喜欢", "开心", "精彩", "美")
    negative = ("bad", "awful", "poor", "sad", "boring", "ugly", "坏", "差", "讨厌", "难过", "无聊", "丑")
    for e in examples:
        tokens = loaded.tokenizer.convert_ids_to_tokens(loaded.tokenizer(e["text"])["input_ids"][0])
        phrase = (" " if e["lang"] == "en" else "").join(e["words"]).replace(" ", "▁")
        assert "".join(tokens[i] for i in e["deciding"]) == phrase
        assert loaded.labels[e["label"]] == e["label_name"]
        if not e["words"]:  # neutral: filler only
            assert e["label_name"] == "neutral" and not any(w in e["text"] for w in positive + negative)
            continue
        assert e["label_name"] == ("positive" if (e["words"][-1] in positive) ^ e["negated"] else "negative")


def test_sequence_ground_truth():
    for e in generate("toy-induction", 50, 2):
        ids = [None] + list(e["text"])  # token 0 is [BOS]
        assert all(ids[t] == ids[s] and s == t - e["segment"] for t, s in e["copies"])
    for e in generate("toy-reverse", 50, 2):
        assert all(e["target"][t] == e["text"][s - 1] for t, s in e["alignment"])  # token s - 1 after [CLS]


def test_shapes_ground_truth_is_the_shape():
    counts = set()
    for e in generate("toy-shapes", 30, 3):
        colours = e["image"][e["mask"]]
        assert e["mask"].sum() > 15 and (colours == colours[0]).all()
        top, left, bottom, right = e["box"]
        assert e["mask"][top: bottom + 1, left: right + 1].sum() == e["mask"].sum()
        assert e["patch_mask"].shape == (8, 8) and abs(e["patch_mask"].sum() * 16 - e["mask"].sum()) < 1e-3
        # several shapes of different classes; the mask is the first one's, which "label" names
        assert e["labels"] == sorted(set(e["labels"])) and e["label"] in e["labels"]
        assert e["label_names"] == [CLASSES[c] for c in e["labels"]] and e["label_name"] == CLASSES[e["label"]]
        counts.add(len(e["labels"]))
    assert counts == {1, 2, 3}


@pytest.mark.parametrize("name", TRAINED)
def test_shipped_toy_reaches_its_accuracy_on_fresh_data(name):
    path = weights_path(name)
    assert path.stat().st_size <= 2 * 1024 * 1024
    model, _, meta = load_toy(path)
    assert meta["task"] == RECIPES[name].task and meta["accuracy"].endswith("%")
    acc = accuracy(name, model, generate(name, 200, FRESH))  # toy-shapes: every shape of the image named, no other
    assert acc >= 0.97, f"{name}: {acc:.3f}"
    assert load_model(name, device="cpu").multi_label == RECIPES[name].multi_label == (name == "toy-shapes")


def test_induction_head_attends_to_the_induction_position():
    loaded = load_model("toy-induction", device="cpu")
    scores = induction_scores(loaded, generate("toy-induction", 60, FRESH))  # (layer, head)
    assert scores.shape == (loaded.num_layers, loaded.num_heads)
    assert float(scores.max()) >= 0.5, scores


def test_reverse_decodes_through_loaded_model_and_stops_at_eos():
    loaded = load_model("toy-reverse", device="cpu")
    texts = ["jumping", "猫狗鱼鸟abc", "xyz"]
    enc = loaded.encode(texts)  # attnviz's own greedy decoding, as `attnviz capture` runs it
    for text, tokens, mask in zip(texts, enc.decoder_tokens, enc.decoder_mask):
        kept = [t for t, m in zip(tokens, mask.tolist()) if m]
        assert kept == ["[BOS]", *text[::-1], "[EOS]"], kept


def test_reverse_cross_attention_follows_the_anti_diagonal():
    loaded = load_model("toy-reverse", device="cpu")
    scores = antidiagonal_scores(loaded, generate("toy-reverse", 60, FRESH))
    assert float(scores.max()) >= 0.95, scores


@pytest.mark.slow
def test_a_short_training_run_learns_and_repeats_exactly():
    # Chance is 1/3; neutral plus the word's polarity alone (ignoring negation) gives 1/3 + 2/3 * 0.7 = 0.8.
    first = train("toy-sentiment", seed=3, steps=300, heldout=300)
    assert first.accuracy >= 0.78, first.accuracy
    a, b = train("toy-sentiment", seed=5, steps=3, heldout=10), train("toy-sentiment", seed=5, steps=3, heldout=10)
    assert all(torch.equal(a.model.state_dict()[k], v) for k, v in b.model.state_dict().items())


def test_a_multi_label_toy_trains_on_every_shape_and_loads_as_multi_label(tmp_path):
    from attnviz.models.toys.train import loss_of, tensors
    from attnviz.attribution.toy_training import train_toy

    recipe, examples = RECIPES["toy-shapes"], generate("toy-shapes", 4, 0)
    batch = tensors(recipe, examples)
    assert batch["labels"].shape == (4, 4) and batch["labels"].sum(1).tolist() == [len(e["labels"]) for e in examples]
    model = load_model("toy-shapes", device="cpu").model
    expected = torch.nn.functional.binary_cross_entropy_with_logits(model(pixel_values=batch["pixel_values"]).logits,
                                                                     batch["labels"])
    assert torch.allclose(loss_of(recipe, model, batch), expected)
    train_toy("toy-shapes", steps=2, heldout=10, out=tmp_path / "s.safetensors")
    assert load_model(str(tmp_path / "s.safetensors"), device="cpu").multi_label


@pytest.mark.parametrize("name", [*TRAINED, *RANDOM])
def test_every_toy_captures(name):
    loaded = load_model(name, device="cpu")
    if loaded.kind == "vision":
        inputs = [Image.fromarray(e["image"]) for e in generate("toy-shapes", 2, 0)]
    else:
        inputs = [e["text"] for e in generate(name, 2, 0)] if name in TRAINED else ["猫狗abc", "hello world"]
    maps = capture(loaded, inputs)
    assert maps.weights.shape[:3] == (loaded.num_layers, 2, loaded.num_heads)
    assert "[UNK]" not in maps.tokens[0] or loaded.kind == "vision"
    if loaded.kind == "encoder-decoder":
        assert maps.cross is not None and maps.cross.shape[-1] == maps.weights.shape[-1]


def test_cli_data_writes_jsonl_and_images(tmp_path):
    res = runner.invoke(app, ["toy", "data", "toy-sentiment", "--n", "5", "--seed", "1", "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (tmp_path / "s" / "toy-sentiment.jsonl").read_text("utf-8").splitlines()]
    assert rows == generate("toy-sentiment", 5, 1)
    res = runner.invoke(app, ["toy", "data", "toy-shapes", "--n", "3", "--out", str(tmp_path / "img")])
    assert res.exit_code == 0, res.output
    labels = json.loads((tmp_path / "img" / "labels.json").read_text("utf-8"))
    assert len(labels) == 3 and all((tmp_path / "img" / row["mask"]).is_file() for row in labels)
    assert all(row["image"] == f"{row['label_name']}/{i:05d}.png" for i, row in enumerate(labels))
    assert all(row["label"] in row["labels"] and row["label_name"] in row["label_names"] for row in labels)


def test_toy_shapes_data_is_a_labelled_folder_for_the_benchmark_and_cam(tmp_path):
    """`toy data toy-shapes` writes what `bench faithfulness --images` reads, masks included; cam skips the masks."""
    res = runner.invoke(app, ["toy", "data", "toy-shapes", "--n", "6", "--seed", "1", "--out", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "f.json"
    res = runner.invoke(app, ["bench", "faithfulness", "--model", "toy-shapes", "--images", str(tmp_path / "d"),
                              "--methods", "rollout", "--json", str(out)])
    assert res.exit_code == 0, res.output
    rows = {r["method"]: r for r in json.loads(out.read_text("utf-8"))["rows"]}
    assert rows["rollout"]["n"] == 6 and rows["ground-truth"]["pointing"] == 1.0  # every mask was read
    res = runner.invoke(app, ["cam", str(tmp_path / "d" / "*" / "*.png"), "--out", str(tmp_path / "cam")])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "cam").glob("0*-attn-grad.png"))) == 6  # one overlay per image, none per mask


def test_cli_bad_input_is_one_line(tmp_path):
    for args in (["toy", "data", "toy-nothing", "--out", str(tmp_path)], ["toy", "data", "toy-shapes", "--n", "0",
                 "--out", str(tmp_path)], ["toy", "train", "toy-sentiment", "--steps", "0"],
                 ["toy", "train", "toy-sentiment", "--steps", "1", "--out", str(tmp_path / "w.txt")]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert not any(tmp_path.iterdir())


def test_cli_train_prints_accuracy_and_writes_loadable_weights(tmp_path):
    out = tmp_path / "t.safetensors"
    res = runner.invoke(app, ["toy", "train", "toy-reverse", "--steps", "2", "--seed", "1", "--heldout", "20",
                                 "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "held-out accuracy" in res.output and "antidiagonal" in res.output
    model, tok, meta = load_toy(out)
    assert meta["steps"] == 2 and tok is not None and model.config.kind == "encoder-decoder"
    loaded = load_model(str(out), device="cpu")  # the file itself is a --model
    assert loaded.kind == "encoder-decoder" and loaded.task == "seq2seq" and "toy weights t.safetensors" in loaded.source
    res = runner.invoke(app, ["heatmap", "abc", "--model", str(out), "--stack", "cross", "--out", str(tmp_path / "h.png")])
    assert res.exit_code == 0 and (tmp_path / "h.png").is_file(), res.output
    res = runner.invoke(app, ["capture", "abc", "--model", "toy-encoder", "--out", str(tmp_path / "m.safetensors")])
    assert res.exit_code == 0, res.output  # a maps file: .safetensors, but no toy
    res = runner.invoke(app, ["info", str(tmp_path / "m.safetensors")])
    assert res.exit_code == 3 and "not toy weights from `attnviz toy train`" in res.output


def test_cli_models_lists_toys_with_accuracy():
    res = runner.invoke(app, ["models"])
    assert res.exit_code == 0, res.output
    assert all(name in res.output for name in TRAINED) and "accuracy" in res.output
    rows = [line for line in res.output.splitlines() if any(f" {name} " in line for name in TRAINED)]
    assert len(rows) == len(TRAINED) and all("%" in row for row in rows)
