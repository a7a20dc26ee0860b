"""Hostile and unlucky input (issue 16): each test names the class of break it guards against.

Every case must end in a clean refusal with the documented exit code, a valid file, or nothing written.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.errors import BadInput
from attnviz.io import write_atomically
from attnviz.maps import AttentionMaps, parse_ranges

runner = CliRunner()


def _maps(batch: int = 2, seq: int = 3) -> AttentionMaps:
    weights = torch.rand(2, batch, 2, seq, seq).softmax(-1)  # (layer, batch, head, query, key)
    return AttentionMaps(weights=weights, mask=torch.ones(batch, seq, dtype=torch.long),
                         tokens=[[f"t{i}" for i in range(seq)] for _ in range(batch)], layers=[0, 1], heads=[0, 1])


def _lie(path, **changes) -> None:
    """Save valid maps, then overwrite tensors or metadata fields with ``changes``."""
    tensors, meta = _maps().to_parts()
    meta = json.loads(meta)
    for key, value in changes.items():
        if isinstance(value, torch.Tensor):
            tensors[key] = value
        else:
            meta[key] = value
    save_file(tensors, str(path), metadata={"attnviz": json.dumps(meta)})


LIES = {
    "tokens too short": {"tokens": [["a"], ["b"]]},
    "tokens not strings": {"tokens": [[1, 2, 3], [4, 5, 6]]},
    "mask of the wrong shape": {"mask": torch.ones(2, 5)},
    "1-D weights": {"weights": torch.ones(7)},
    "empty weights": {"weights": torch.ones(0, 2, 2, 3, 3)},
    "layer list too short": {"layers": [0]},
    "head labels not numbers": {"heads": ["a", "b"]},
    "negative weights": {"weights": -torch.ones(2, 2, 2, 3, 3)},
}


@pytest.mark.parametrize("lie", sorted(LIES))
def test_10_a_maps_file_whose_metadata_lies_is_refused_with_exit_2(lie, tmp_path):
    path = tmp_path / "m.safetensors"
    _lie(path, **LIES[lie])
    with pytest.raises(BadInput, match="not a valid attnviz maps file"):
        AttentionMaps.load(path)
    res = runner.invoke(app, ["heatmap", "--from", str(path), "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2, res.output
    assert "not a valid attnviz maps file" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.png").exists()


def test_10_valid_maps_still_load(tmp_path):
    path = _maps().save(tmp_path / "m.safetensors")
    assert AttentionMaps.load(path).weights.shape == (2, 2, 2, 3, 3)


def test_15_a_huge_layer_range_is_refused_before_it_is_built():
    with pytest.raises(BadInput, match="layer 99999999999 is out of range; valid layers: 0-5"):
        parse_ranges("0-99999999999", 6, "layer")
    with pytest.raises(BadInput, match="more than"):
        parse_ranges("0-99999999999", 0, "layer")  # the count is unknown: still bounded


def test_7_a_planted_link_is_never_written_through(tmp_path):
    """The temporary file is created exclusively with an unpredictable name, inside the target folder."""
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    folder = tmp_path / "out"
    folder.mkdir()
    for pid in range(os.getpid() - 2, os.getpid() + 3):  # the names the old writer would have used
        (folder / f".x.png.{pid}.part").symlink_to(outside)
    seen = []
    write_atomically(folder / "x.png", lambda tmp: (seen.append(tmp), tmp.write_bytes(b"png")))
    assert outside.read_text() == "keep" and (folder / "x.png").read_bytes() == b"png"
    assert seen[0].parent == folder and not seen[0].is_symlink()


def test_9_a_special_file_as_output_is_refused(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(BadInput, match="not a regular file"):
        write_atomically(fifo, lambda tmp: tmp.write_bytes(b"x"))
    assert fifo.is_fifo()
    res = runner.invoke(app, ["heatmap", "hi", "--model", "toy-sentiment", "--out", str(fifo)])
    assert res.exit_code == 2 and fifo.is_fifo(), res.output
