"""The maps file: what capture writes and AttentionMaps.load reads back, and how it is written."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from attnviz.errors import BadInput
from attnviz.io import write_atomically
from attnviz.maps import AttentionMaps
from attnviz.models import load_model
from attnviz.recording import capture, recording
from conftest import save

TEXTS = ["the cat sat on the mat", "猫 在 上", "hello world"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return load_model(str(save("bert", tmp_path_factory.mktemp("bert"))), device="cpu")


def test_maps_round_trip_through_safetensors(bert, tmp_path):
    maps = capture(bert, TEXTS, heads=[0, 3])
    assert "猫" in maps.tokens[1]
    path = maps.save(tmp_path / "maps.safetensors")
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == {"weights", "mask"}
        meta = json.loads(f.metadata()["attnviz"])
    assert meta["tokens"] == maps.tokens and meta["layers"] == [0, 1] and meta["heads"] == [0, 3]
    assert meta["model"] == maps.model and meta["kind"] == "encoder"
    back = AttentionMaps.load(path)
    assert torch.equal(back.weights, maps.weights) and torch.equal(back.mask, maps.mask)
    for f in dataclasses.fields(AttentionMaps):
        if f.name not in ("weights", "mask"):
            assert getattr(back, f.name) == getattr(maps, f.name), f.name


def test_weights_written_in_place_equal_the_copied_ones():
    """All heads in float32 go straight into one buffer; a head selection is copied into its own buffer, from
    weights computed over the scores in place."""
    import attnviz.models

    loaded = attnviz.models.load_model("minilm", device="cpu")
    batch = loaded.encode(["a short one", "and a somewhat longer sentence"]).batch
    with torch.inference_mode():
        with recording(loaded.model) as direct:
            loaded.model(**batch)
        with recording(loaded.model, heads=list(range(loaded.num_heads))) as copied:
            loaded.model(**batch)
    assert direct.stacked("encoder") is direct.buffers["encoder"]
    assert copied.stacked("encoder") is copied.buffers["encoder"]
    assert direct.buffers["encoder"].data_ptr() != copied.buffers["encoder"].data_ptr()
    assert torch.equal(direct.stacked("encoder"), copied.stacked("encoder"))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_part(tmp_path):
    """Every writer (maps, snapshots, toy weights, reports) goes through write_atomically."""
    target = tmp_path / "maps.safetensors"
    target.write_bytes(b"old")

    def fails(tmp):
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(BadInput, match="cannot write .*No space left on device"):
        write_atomically(target, fails)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["maps.safetensors"]
    assert write_atomically(target, lambda tmp: tmp.write_bytes(b"new")) == target and target.read_bytes() == b"new"

    def breaks(tmp):  # a writer's own error type (safetensors raises SafetensorError)
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError):
        write_atomically(target, breaks)
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["maps.safetensors"]
    for bad, message in ((tmp_path, "it is a folder"), (Path("."), "it is a folder"),
                         (tmp_path / "missing" / "m.safetensors", "the folder .*missing does not exist")):
        with pytest.raises(BadInput, match=message):
            write_atomically(bad, lambda tmp: tmp.write_bytes(b"x"))


def test_a_view_into_a_larger_tensor_is_saved_alone(tmp_path):
    big = torch.rand(4, 1, 1, 3, 3)  # (layer, batch, head, q, k)
    for view in (big[1:2], big[:, :, :, :2, :2]):  # contiguous with an offset; strided
        maps = AttentionMaps(weights=view, mask=torch.ones(1, view.shape[-1]), tokens=[list("abc")[:view.shape[-1]]],
                             layers=list(range(view.shape[0])), heads=[0])
        path = maps.save(tmp_path / "one.safetensors")
        assert torch.equal(AttentionMaps.load(path).weights, view)
        assert maps.to_parts()[0]["weights"].untyped_storage().nbytes() == view.numel() * 4
