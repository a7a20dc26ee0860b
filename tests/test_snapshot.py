"""Snapshots in the library: record, check, drift, tolerances, tokens, attribution, the metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from attnviz.errors import BadInput
from attnviz.snapshot import SnapshotSettings, Tolerance, check, record
from attnviz.snapshot.compare import head_stats, spearman
from attnviz.snapshot.store import input_key, load_baseline
from conftest import TEXTS, nudge_query, toy


@pytest.mark.parametrize("kind", ["encoder", "decoder", "encoder-decoder"])
def test_record_then_check_passes(tmp_path, kind):
    loaded = toy(kind)
    res = record(loaded, TEXTS, tmp_path, SnapshotSettings())
    assert sorted(p.stem for p in res.written) == sorted(input_key(t) for t in TEXTS)
    result = check(loaded, TEXTS, tmp_path)
    assert result.ok, result.summary()
    assert result.summary().startswith("ok: 4 inputs")
    base = load_baseline(res.written[0])
    assert base.maps.weights.shape[1] == 1 and int(base.maps.mask.sum()) == base.maps.weights.shape[-1]
    if kind == "encoder-decoder":
        assert base.maps.cross.shape[-2:] == (base.maps.decoder.shape[-1], base.maps.weights.shape[-1])


def test_manifest_holds_model_hashes_settings_versions(tmp_path):
    record(toy(), TEXTS, tmp_path, SnapshotSettings(layers=(1,), store_dtype="float16"))
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["model"] == "toy-encoder" and len(man["weights_hash"]) == 64 and len(man["tokenizer_hash"]) == 64
    assert man["capture"]["layers"] == [1] and man["store_dtype"] == "float16"
    assert {"torch", "transformers", "attnviz", "device", "dtype", "config"} <= set(man)
    assert [i["text"] for i in man["inputs"]] == TEXTS


def test_a_1e3_change_to_one_query_matrix_fails_and_names_the_layer(tmp_path):
    loaded = toy(n_layers=3)
    record(loaded, TEXTS, tmp_path, SnapshotSettings())
    nudge_query(loaded, 1, 1e-3)
    result = check(loaded, TEXTS, tmp_path)
    assert not result.ok
    layers = result.drifting_layers()["encoder"]
    assert layers[0] == 1 and 0 not in layers  # layer 0 runs before the change
    assert "first drifting layer: 1" in result.summary()
    assert all(h.layer >= 1 and h.severity > 1 for h in result.worst_heads(50))
    assert ("weights_hash" in [c[0] for c in result.context])  # context, not the verdict


def test_a_1e7_change_passes(tmp_path):
    loaded = toy(n_layers=3)
    record(loaded, TEXTS, tmp_path, SnapshotSettings())
    nudge_query(loaded, 1, 1e-7)
    result = check(loaded, TEXTS, tmp_path)
    assert result.ok, result.summary()
    assert result.context == []  # weight hashes are computed only to explain a failure
    man = json.loads((tmp_path / "manifest.json").read_text())
    man.update(torch="1.0.0", device="cuda:0")
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    changed = check(loaded, TEXTS, tmp_path).context
    assert ("device", "cuda:0", "cpu") in changed and [c[0] for c in changed] == ["device", "torch"]


def test_fp16_baselines_pass_under_their_own_tolerance(tmp_path):
    loaded = toy(n_layers=3)
    record(loaded, TEXTS, tmp_path, SnapshotSettings(store_dtype="float16"))
    assert load_baseline(tmp_path / f"{input_key(TEXTS[0])}.safetensors").maps.weights.dtype == torch.float16
    nudge_query(loaded, 1, 1e-7)
    assert check(loaded, TEXTS, tmp_path).ok
    # The same half-precision baselines against full-precision weights: within the float16
    # tolerance, but the rounding alone is more than the float32 tolerance allows.
    man = json.loads((tmp_path / "manifest.json").read_text())
    man["capture"]["store_dtype"] = "float32"
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    assert check(loaded, TEXTS, tmp_path, tolerance=Tolerance.for_dtype("float16")).ok
    assert not check(loaded, TEXTS, tmp_path, tolerance=Tolerance.for_dtype("float32")).ok


def test_changed_tokens_are_reported_as_tokens(tmp_path):
    loaded = toy()
    record(loaded, TEXTS, tmp_path, SnapshotSettings())
    loaded.tokenizer._ids.pop("猫", None)
    loaded.tokenizer._ids.pop("我")  # 我 now tokenizes as [UNK]
    result = check(loaded, TEXTS, tmp_path)
    changed = [r for r in result.inputs if r.status == "tokens"]
    assert [r.text for r in changed] == ["我喜欢这部电影"]
    assert "'我' -> '[UNK]'" in changed[0].message and not changed[0].heads
    assert "1 inputs tokenize differently" in result.summary()


def test_update_is_the_only_way_baselines_change(tmp_path):
    loaded = toy()
    record(loaded, TEXTS, tmp_path, SnapshotSettings())
    with pytest.raises(BadInput, match="--update"):
        record(loaded, TEXTS[:2], tmp_path, SnapshotSettings())
    res = record(loaded, TEXTS[:2] + [TEXTS[0]], tmp_path, SnapshotSettings(), update=True)
    assert res.duplicates == 1 and sorted(res.removed) == sorted(input_key(t) for t in TEXTS[2:])
    assert sorted(p.stem for p in tmp_path.glob("*.safetensors")) == sorted(input_key(t) for t in TEXTS[:2])


def test_unused_baselines_are_listed(tmp_path):
    loaded = toy()
    record(loaded, TEXTS, tmp_path, SnapshotSettings())
    result = check(loaded, TEXTS[:3], tmp_path)
    assert result.ok and result.unused == [input_key(TEXTS[3])]


def test_attribution_drift_without_attention_drift(tmp_path):
    loaded = toy()
    record(loaded, TEXTS, tmp_path, SnapshotSettings(methods=("saliency",)))
    assert load_baseline(tmp_path / f"{input_key(TEXTS[1])}.safetensors").attributions["saliency"].shape == (15,)
    assert check(loaded, TEXTS, tmp_path).ok
    torch.manual_seed(1)
    with torch.no_grad():  # the classifier head only: attention cannot change, its explanation can
        loaded.model.head.weight.add_(torch.randn_like(loaded.model.head.weight) * 0.05)
    result = check(loaded, TEXTS, tmp_path)
    assert not result.ok and not result.worst_heads()
    assert "attributions drift: saliency" in result.summary()


def test_head_stats_by_hand():
    base = torch.tensor([[[[0.5, 0.5], [1.0, 0.0]]]])  # (L=1, H=1, Q=2, K=2)
    cur = torch.tensor([[[[0.5, 0.5], [0.0, 1.0]]]])
    s = head_stats(base, cur, Tolerance())
    assert float(s["max_abs"]) == 1.0 and float(s["mean_abs"]) == 0.5
    assert math.isclose(float(s["jsd"]), math.log(2), rel_tol=1e-6)  # disjoint rows: JSD = ln 2
    assert float(s["argmax"]) == 0.5
    tie = torch.tensor([[[[0.5, 0.5]]]])  # a tie within max_abs is not a disagreement
    assert float(head_stats(tie, torch.tensor([[[[0.49995, 0.50005]]]]), Tolerance())["argmax"]) == 1.0


def test_jsd_matches_the_float64_definition_for_small_changes():
    torch.manual_seed(0)
    b = torch.softmax(torch.randn(2, 3, 9, 9) * 3, -1)  # (L, H, Q, K)
    c = torch.softmax(b.log() + torch.randn(2, 3, 9, 9) * 1e-3, -1)
    bd, cd = b.double(), c.double()
    m = (bd + cd) / 2
    ref = (0.5 * ((bd * (bd / m).log()).sum(-1) + (cd * (cd / m).log()).sum(-1))).amax(-1)  # (L, H)
    got = head_stats(b, c, Tolerance())["jsd"]
    torch.testing.assert_close(got, ref, rtol=1e-3, atol=1e-10)


def test_spearman_by_hand():
    assert spearman(torch.tensor([1.0, 2, 3]), torch.tensor([10.0, 20, 30])) == pytest.approx(1.0)
    assert spearman(torch.tensor([1.0, 2, 3]), torch.tensor([3.0, 2, 1])) == pytest.approx(-1.0)
    assert spearman(torch.tensor([1.0]), torch.tensor([5.0])) == 1.0


def test_tolerance_defaults_fit_the_dtype():
    half, full = Tolerance.for_dtype("float16"), Tolerance.for_dtype("float32")
    assert half.max_abs > full.max_abs and half.jsd > full.jsd
    assert Tolerance.for_dtype("float32", max_abs=0.5, jsd=None).max_abs == 0.5
    with pytest.raises(BadInput, match="unknown tolerance"):
        Tolerance.for_dtype("float32", maxabs=1)
    with pytest.raises(BadInput, match=">= 0"):
        Tolerance.for_dtype("float32", max_abs=-1)


def test_input_keys_are_safe_file_names():
    for text in ["../../etc/passwd", "我喜欢", "a/b\\c", "   x   ", "CON"]:
        key = input_key(text)
        assert all(ch.isalnum() and ch.isascii() or ch == "-" for ch in key) and len(key) < 50
    assert input_key("a") != input_key("A")


def test_minilm_drift_names_layer_1_and_a_1e7_change_passes(tmp_path, minilm):
    texts = ["The movie was not good, but the music was wonderful.", "A quiet film about a loud family."]
    record(minilm, texts, tmp_path, SnapshotSettings())
    weight = minilm.model.encoder.layer[1].attention.self.query.weight
    saved = weight.detach().clone()
    try:
        nudge_query(minilm, 1, 1e-3)
        result = check(minilm, texts, tmp_path)
        assert not result.ok and result.drifting_layers()["encoder"][0] == 1
        assert 0 not in result.drifting_layers()["encoder"]
        with torch.no_grad():
            weight.copy_(saved)
        nudge_query(minilm, 1, 1e-7)
        assert check(minilm, texts, tmp_path).ok
    finally:  # the model is shared by the whole test session
        with torch.no_grad():
            weight.copy_(saved)
    assert check(minilm, texts, tmp_path).context == []


def test_a_failed_write_leaves_the_snapshot_as_it_was(tmp_path, monkeypatch):
    import attnviz.snapshot.store as store

    loaded = toy()
    record(loaded, TEXTS, tmp_path / "s", SnapshotSettings())
    before = {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir()}
    real, calls = store.save_baseline, []

    def failing(folder, base):  # the third file finds the disk full
        calls.append(base.key)
        if len(calls) == 3:
            raise BadInput("cannot write: No space left on device")
        return real(folder, base)

    monkeypatch.setattr(store, "save_baseline", failing)
    nudge_query(loaded, 1, 1e-3)
    with pytest.raises(BadInput, match="No space left"):
        record(loaded, TEXTS[:2] + ["a new input"], tmp_path / "s", SnapshotSettings(), update=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir()} == before
    calls.clear()
    with pytest.raises(BadInput, match="No space left"):
        record(loaded, TEXTS, tmp_path / "new" / "s", SnapshotSettings())
    assert not (tmp_path / "new" / "s").exists()
