"""report --engine ray on a local Ray runtime with 2 CPUs (one runtime for the module): the same summary as
the local engine, resume across engines, a killed actor's bucket retried without duplicates, progress,
and the refusal when Ray is not installed."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.report.batch import ReportConfig, run_report
from attnviz.report.engines import Cluster
from attnviz.report.inputs import read_items
from conftest import text_classifier

ray = pytest.importorskip("ray")
runner = CliRunner()
TEXTS = ["the movie was good", "", "a cat sat on the mat and the dog ran far", "not good", "<script>alert(1)</script>",
         "the music was wonderful but the movie was not", "我 喜 欢 电 影", " ".join(["movie"] * 40), "a dog", "the cat"]


@pytest.fixture(scope="module")
def runtime():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(text_classifier(tmp_path_factory.mktemp("bert")))


@pytest.fixture(scope="module")
def loaded(model):
    from attnviz.models import load_model

    return load_model(model, device="cpu")


def _inputs(tmp_path: Path, texts=TEXTS) -> Path:
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return src


def _ray_cfg(out: Path | str, model: str, **kw) -> ReportConfig:
    from attnviz.models import LoadOptions

    options = dict(views=("head",), batch_size=3, engine="ray", workers=2,
                   cluster=Cluster(model=model, load=LoadOptions(device="cpu")))
    return ReportConfig(out=out, **{**options, **kw})


def test_the_ray_engine_writes_what_the_local_engine_writes(runtime, tmp_path, model, loaded):
    items = read_items(_inputs(tmp_path))
    run_report(loaded, items, ReportConfig(out=tmp_path / "local", views=("head",), batch_size=3))
    seen = []
    result = run_report(loaded, items, _ray_cfg(tmp_path / "ray", model), lambda n, _id: seen.append(n))
    assert seen == list(range(1, len(items) + 1))  # one step per item, from the actors' results as they come
    local, remote = ((tmp_path / side / "summary.json").read_text(encoding="utf-8") for side in ("local", "ray"))
    assert json.loads(remote) == json.loads(local)
    assert len(json.loads(remote)["items"]) == 8 and len(result.skipped) == 2
    for name in ("summary.csv", "report.html"):  # attention payloads too: the same bytes
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    pngs = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.png"))
    assert len(pngs) == 8
    assert all((tmp_path / "ray" / p).read_bytes() == (tmp_path / "local" / p).read_bytes() for p in pngs)


def test_resume_skips_items_finished_by_the_other_engine(runtime, tmp_path, model, loaded):
    items = read_items(_inputs(tmp_path))
    run_report(loaded, items[:5], ReportConfig(out=tmp_path / "out", batch_size=3))  # the local engine, half
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("item.json")}
    assert len(before) == 4  # the empty line was skipped
    result = run_report(loaded, items, _ray_cfg(tmp_path / "out", model, resume=True))
    assert result.resumed == 4 and len(result.records) == 8
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    assert [r["id"] for r in result.records] == [i.id for i in items if i.id in {r["id"] for r in result.records}]
    back = run_report(loaded, items, ReportConfig(out=tmp_path / "out", resume=True))  # and the other way
    assert back.resumed == 8


def test_the_actors_write_to_a_url_and_resume_reads_it(runtime, tmp_path, model, loaded):
    """file:// goes through fsspec as s3:// would: the actors open the URL themselves (no shared folder assumed)."""
    items = read_items(_inputs(tmp_path))
    run_report(loaded, items, ReportConfig(out=tmp_path / "local", views=("head",), batch_size=3))
    run_report(loaded, items[:5], ReportConfig(out=tmp_path / "url", views=("head",), batch_size=3))  # half, locally
    result = run_report(loaded, items, _ray_cfg(f"file://{tmp_path / 'url'}", model, resume=True))
    assert result.resumed == 4 and len(result.records) == 8
    assert result.files[0] == f"file://{tmp_path / 'url' / 'summary.json'}"
    local, remote = (json.loads((tmp_path / side / "summary.json").read_text(encoding="utf-8")) for side in ("local", "url"))
    assert remote["items"] == local["items"]
    pngs = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*.png"))
    assert len(pngs) == 8
    assert all((tmp_path / "url" / p).read_bytes() == (tmp_path / "local" / p).read_bytes() for p in pngs)
    assert not list((tmp_path / "url").rglob("*.part"))


def _kill_one_actor(out: Path, killed: list, deadline: float) -> None:
    """SIGKILL one map actor process as soon as the first item is written (a worker lost mid-run)."""
    import psutil

    while time.monotonic() < deadline and not killed:
        if any(out.rglob("item.json")):
            for proc in psutil.process_iter(["cmdline"]):
                if any("MapWorker" in part for part in proc.info["cmdline"] or []):
                    proc.kill()
                    killed.append(proc.pid)
                    return
        time.sleep(0.02)


def test_a_killed_actor_s_bucket_is_retried_and_no_item_is_lost_or_doubled(runtime, tmp_path, model, loaded):
    texts = [f"the cat sat on the mat {'and the dog ran ' * (i % 5)}{i}" for i in range(40)]
    items = read_items(_inputs(tmp_path, texts))
    killed: list[int] = []
    watcher = threading.Thread(target=_kill_one_actor, args=(tmp_path / "out", killed, time.monotonic() + 60))
    watcher.start()
    start = time.monotonic()
    result = run_report(loaded, items, _ray_cfg(tmp_path / "out", model, batch_size=2))
    watcher.join()
    assert killed, "no actor process was found to kill"
    assert time.monotonic() - start < 90
    ids = [r["id"] for r in json.loads((tmp_path / "out" / "summary.json").read_text())["items"]]
    assert ids == [i.id for i in items] and not result.skipped
    assert len(list((tmp_path / "out" / "items").glob("*/item.json"))) == 40


def test_the_command_runs_on_ray_and_checks_its_options(runtime, tmp_path, model):
    src = _inputs(tmp_path, TEXTS[:4])
    res = runner.invoke(app, ["report", str(src), "--model", model, "-o", str(tmp_path / "out"), "--engine", "ray",
                              "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["counts"] == {"done": 3, "skipped": 1}
    assert ray.is_initialized()  # a runtime the caller started is left running
    for args in (["--engine", "spark"], ["--address", "auto"], ["--engine", "ray", "--num-gpus-per-worker", "-1"]):
        res = runner.invoke(app, ["report", str(src), "--model", model, "-o", str(tmp_path / "o2"), *args])
        assert res.exit_code == 2, (args, res.output)
    assert not (tmp_path / "o2").exists()


def test_without_ray_the_engine_is_refused_naming_the_extra(tmp_path, model, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    res = runner.invoke(app, ["report", str(_inputs(tmp_path, TEXTS[:2])), "--model", model, "-o",
                              str(tmp_path / "out"), "--engine", "ray"])
    assert res.exit_code == 2
    assert "attnviz[ray]" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()
