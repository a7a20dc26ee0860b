"""report --out as an fsspec URL: the local engine writes the same summary into memory:// as into a folder,
--resume reads what is done from the URL, writes stay inside the URL's folder and are whole, and a URL
that cannot be opened is one line and exit 2 before any model loads."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.errors import BadInput
from attnviz.report.batch import ReportConfig, run_report
from attnviz.report.inputs import read_items
from attnviz.report.outdir import UrlOut, is_url, open_out
from conftest import text_classifier

fsspec = pytest.importorskip("fsspec")
runner = CliRunner()
TEXTS = ["the movie was good", "", "a cat sat on the mat and the dog ran far", "not good",
         "<script>alert(1)</script>", "我 喜 欢 电 影", " ".join(["movie"] * 40), "a dog"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(text_classifier(tmp_path_factory.mktemp("bert")))


@pytest.fixture(scope="module")
def loaded(model):
    from attnviz.models import load_model

    return load_model(model, device="cpu")


def _items(tmp_path: Path, texts=TEXTS):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return read_items(src)


def _memory() -> tuple[str, object, str]:
    url = f"memory://attnviz-test-{uuid.uuid4().hex[:8]}/report"
    fs, root = fsspec.core.url_to_fs(url)
    return url, fs, root


@pytest.mark.parametrize("workers", [0, 1])
def test_a_memory_url_gets_what_a_folder_gets(tmp_path, loaded, workers):
    items = _items(tmp_path)
    local = run_report(loaded, items, ReportConfig(out=tmp_path / "local", batch_size=3))
    url, fs, root = _memory()
    remote = run_report(loaded, items, ReportConfig(out=url, batch_size=3, workers=workers))
    assert json.loads(fs.cat_file(f"{root}/summary.json")) == json.loads((tmp_path / "local" / "summary.json").read_bytes())
    for name in ("summary.csv", "report.html"):
        assert fs.cat_file(f"{root}/{name}") == (tmp_path / "local" / name).read_bytes()
    pngs = sorted(p.relative_to(tmp_path / "local").as_posix() for p in (tmp_path / "local").rglob("*.png"))
    assert len(pngs) == len(local.records) == len(remote.records) == 6
    assert all(fs.cat_file(f"{root}/{p}") == (tmp_path / "local" / p).read_bytes() for p in pngs)
    assert not [p for p in fs.find(root) if p.endswith(".part")]  # every temporary name was moved into place
    assert remote.files == [f"memory://{root}/{n}" for n in ("summary.json", "summary.csv", "report.html")]


def test_resume_reads_finished_items_from_the_url(tmp_path, loaded):
    items = _items(tmp_path)
    url, fs, root = _memory()
    run_report(loaded, items[:4], ReportConfig(out=url, batch_size=3))
    done = {p: fs.info(p)["created"] for p in fs.find(root) if p.endswith("item.json")}
    assert len(done) == 3  # the empty line was skipped
    damaged = next(iter(done))
    fs.pipe_file(damaged, b"{not json")  # a damaged record is redone, not trusted
    result = run_report(loaded, items, ReportConfig(out=url, batch_size=3, resume=True))
    assert result.resumed == 2 and len(result.records) == 6
    ids = {r["id"] for r in result.records}
    assert [r["id"] for r in result.records] == [i.id for i in items if i.id in ids]
    assert all(fs.info(p)["created"] == t for p, t in done.items() if p != damaged)
    assert json.loads(fs.cat_file(damaged))["id"]  # rewritten whole


def test_url_names_stay_inside_and_writes_are_whole(monkeypatch):
    url, fs, root = _memory()
    out = open_out(url)
    assert isinstance(out, UrlOut) and is_url(url) and not is_url("outputs/report") and not is_url(Path("a"))
    out.prepare()
    for name in ("../escape.txt", "/abs.txt", "items/../../x", "a\\b", "items//x", ""):
        with pytest.raises(BadInput, match="outside"):
            out.write(name, b"x")
    assert not fs.exists(root.rsplit("/", 1)[0] + "/escape.txt")
    assert out.write("summary.json", b"{}").endswith(f"{root}/summary.json")

    real = out.fs.pipe_file

    def broken(path, data):
        real(path, data[:3])  # a half-made temporary file, then the store fails
        raise OSError("disk full")

    monkeypatch.setattr(out.fs, "pipe_file", broken)
    with pytest.raises(BadInput, match="cannot write"):
        out.write("summary.json", b"{\"new\": 1}")
    assert fs.cat_file(f"{root}/summary.json") == b"{}"  # the old file is whole; no temporary name is left
    assert sorted(fs.find(root)) == [f"{root}/summary.json"]


def test_a_local_url_refuses_a_link_out_of_the_folder(tmp_path):
    (tmp_path / "out" / "items").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "items" / "x").symlink_to(tmp_path / "elsewhere")
    out = open_out(f"file://{tmp_path / 'out'}")
    with pytest.raises(BadInput, match="outside"):
        out.write("items/x/item.json", b"{}")
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert out.existing(["items/x/item.json"]) == set()


@pytest.mark.parametrize("url, says", [("nope://bucket/report", "no file system is known for nope://"),
                                       ("memory://", "names no folder")])
def test_a_bad_url_is_one_line_before_the_model_loads(tmp_path, url, says):
    src = tmp_path / "in.txt"
    src.write_text("a cat\n", encoding="utf-8")
    res = runner.invoke(app, ["report", str(src), "--model", str(tmp_path / "no-such-model"), "-o", url])
    assert res.exit_code == 2, res.output  # a model that would not load (exit 3) is never reached
    assert says in res.output and "Traceback" not in res.output


def test_a_url_whose_file_system_is_not_installed_names_the_package(tmp_path, monkeypatch):
    src = tmp_path / "in.txt"
    src.write_text("a cat\n", encoding="utf-8")
    args = ["report", str(src), "--model", str(tmp_path / "no-such-model")]
    monkeypatch.setitem(sys.modules, "s3fs", None)  # not importable, whether installed or not
    res = runner.invoke(app, [*args, "-o", "s3://bucket/report"])
    assert res.exit_code == 2 and "pip install s3fs" in res.output, res.output
    monkeypatch.setitem(sys.modules, "fsspec", None)
    monkeypatch.setitem(sys.modules, "fsspec.core", None)
    res = runner.invoke(app, [*args, "-o", "memory://bucket/report"])
    assert res.exit_code == 2 and "attnviz[urls]" in res.output, res.output


def test_the_command_takes_a_url(tmp_path, model):
    src = tmp_path / "in.txt"
    src.write_text("a cat sat\nthe dog ran\n", encoding="utf-8")
    url, fs, root = _memory()
    res = runner.invoke(app, ["report", str(src), "--model", model, "-o", url])
    assert res.exit_code == 0, res.output
    assert json.loads(fs.cat_file(f"{root}/summary.json"))["counts"] == {"done": 2, "skipped": 0}
    assert f"{root}/report.html" in res.output
