"""Hostile and unlucky input (issue 16): each test names the class of break it guards against.

Every case must end in a clean refusal with the documented exit code, a valid file, or nothing written.
"""

from __future__ import annotations

import csv
import io
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


# ---- batch reports ----

def _strict_json(path):
    """json.loads that refuses NaN/Infinity tokens, as every JSON parser but Python's does."""
    def refuse(token):
        raise ValueError(f"bare {token} in {path.name}")
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def test_4_a_model_that_gives_nan_writes_valid_json_and_flags_the_item(tmp_path):
    from attnviz.models import load_model
    from attnviz.report.batch import ReportConfig, run_report
    from attnviz.report.inputs import read_items

    loaded = load_model("toy-sentiment", device="cpu")
    with torch.no_grad():
        next(loaded.model.parameters()).fill_(float("nan"))  # the embedding: every number after it is NaN
    src = tmp_path / "in.txt"
    src.write_text("the food was good\n", encoding="utf-8")
    run_report(loaded, read_items(src), ReportConfig(out=tmp_path / "out"))
    summary = _strict_json(tmp_path / "out" / "summary.json")
    item = summary["items"][0]
    assert item["non_finite"] and summary["counts"]["non_finite"] == 1
    assert item["mean_entropy"] is None
    item_json = next((tmp_path / "out" / "items").glob("*/item.json"))
    assert _strict_json(item_json)["non_finite"] == item["non_finite"]
    row = list(csv.DictReader(io.StringIO((tmp_path / "out" / "summary.csv").read_text(encoding="utf-8"))))[0]
    assert row["error"].startswith("non-finite values:")
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "NaN" not in page.split('id="data"', 1)[-1].split("</script>", 1)[0]


def test_5_records_split_at_newlines_only_and_text_passes_through(tmp_path):
    from attnviz.report.inputs import read_items

    (tmp_path / "a.jsonl").write_text('{"text": "one\u2028two\u2029three"}\n{"text": "four\x85five"}\n', encoding="utf-8")
    assert [i.text for i in read_items(tmp_path / "a.jsonl")] == ["one\u2028two\u2029three", "four\x85five"]
    (tmp_path / "b.txt").write_text("a\x0bb\x0cc\r\nd\n", encoding="utf-8", newline="")
    assert [i.text for i in read_items(tmp_path / "b.txt")] == ["a\x0bb\x0cc", "d"]
    (tmp_path / "c.csv").write_text('text\n"x\u2028y"\nplain\x0cform\n', encoding="utf-8")
    assert [i.text for i in read_items(tmp_path / "c.csv")] == ["x\u2028y", "plain\x0cform"]


def _report(tmp_path, *extra):
    src = tmp_path / "in.txt"
    if not src.exists():
        src.write_text("the food was good\nthe film was bad\n", encoding="utf-8")
    return runner.invoke(app, ["report", str(src), "--model", "toy-sentiment", "--out", str(tmp_path / "out"), *extra])


def test_6_resume_redoes_a_damaged_item_and_writes_all_three_summaries(tmp_path):
    assert _report(tmp_path).exit_code == 0
    damaged = sorted((tmp_path / "out" / "items").glob("*/item.json"))[0]
    damaged.write_text('{"id": "1"}', encoding="utf-8")  # valid JSON, but not a whole record
    res = _report(tmp_path, "--resume")
    assert res.exit_code == 0, res.output
    summary = _strict_json(tmp_path / "out" / "summary.json")
    assert [i["id"] for i in summary["items"]] == ["1", "2"] and all(i["tokens"] for i in summary["items"])
    assert "tokens" in _strict_json(damaged)  # redone
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "summary.csv").read_text(encoding="utf-8"))))
    assert [r["id"] for r in rows] == ["1", "2"]


def test_8_resume_never_reads_an_item_json_that_links_outside(tmp_path):
    assert _report(tmp_path).exit_code == 0
    target = sorted((tmp_path / "out" / "items").glob("*/item.json"))[0]
    secret = tmp_path / "secret.json"
    record = _strict_json(target)
    secret.write_text(json.dumps({**record, "text": "SECRET CONTENT"}), encoding="utf-8")
    target.unlink()
    target.symlink_to(secret)
    res = _report(tmp_path, "--resume")
    assert res.exit_code == 0, res.output
    assert "SECRET CONTENT" not in (tmp_path / "out" / "summary.json").read_text(encoding="utf-8")
    assert json.loads(secret.read_text(encoding="utf-8"))["text"] == "SECRET CONTENT"  # untouched
    assert not target.is_symlink()


def test_16_a_lone_surrogate_skips_that_item_only(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "good \\ud800 food"}\n{"text": "the film was bad"}\n', encoding="utf-8")
    res = runner.invoke(app, ["report", str(src), "--model", "toy-sentiment", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    summary = _strict_json(tmp_path / "out" / "summary.json")
    assert [i["id"] for i in summary["items"]] == ["2"]
    assert "lone surrogate" in summary["skipped"][0]["error"]


def test_18_a_csv_cell_with_spaces_before_a_formula_is_quoted():
    from attnviz.report.summary import _cell

    assert _cell("  =HYPERLINK(1)") == "'  =HYPERLINK(1)" and _cell("  plain") == "  plain"


def test_7_written_files_get_the_usual_permissions_not_the_temporary_files_private_ones(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_atomically(tmp_path / "x.png", lambda tmp: tmp.write_bytes(b"png"))
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_14_a_maps_file_that_cannot_be_written_whole_is_bad_input_and_leaves_nothing(tmp_path, monkeypatch):
    """safetensors raises its own error type when the disk fills: still one line and exit 2, no partial file."""
    def full(*args, **kwargs):
        raise RuntimeError("No space left on device (os error 28)")

    monkeypatch.setattr("safetensors.torch.save_file", full)
    with pytest.raises(BadInput, match="cannot write .*No space left on device"):
        _maps().save(tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []
