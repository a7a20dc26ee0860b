"""`attnviz report`: inputs, sharding, skipping, resume, paths, summary files and the HTML payload."""

from __future__ import annotations

import base64
import csv
import io
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.report import html as H
from attnviz.report import summary as S
from attnviz.report.inputs import read_items
from conftest import image_classifier, text_classifier

runner = CliRunner()
INJECT = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(text_classifier(tmp_path_factory.mktemp("bert")))


def report(*args):
    return runner.invoke(app, ["report", *map(str, args)])


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]



# ---- numbers ----

def test_entropy_and_most_attended_by_hand():
    n = 4
    uniform = np.full((1, 1, n, n), 1 / n)
    onehot = np.zeros((1, 1, n, n))
    onehot[..., 2] = 1.0
    assert S.head_entropy(uniform)[0, 0] == pytest.approx(np.log(4))
    assert S.head_entropy(onehot)[0, 0] == pytest.approx(0.0, abs=1e-9)
    tokens = ["[CLS]", "a", "b", "[SEP]"]
    w = np.zeros((1, 1, n, n))
    w[..., 0] = 0.7  # the sink gets most, but is left out
    w[..., 2] = 0.2
    w[..., 1] = 0.1
    top = S.most_attended(w, tokens, set())
    assert [t["token"] for t in top] == ["b", "a"]


def test_attention_payload_round_trip():
    rng = np.random.default_rng(0)
    w = rng.random((2, 3, 5, 5)).astype(np.float32)
    w /= w.sum(-1, keepdims=True)
    enc = H.encode_attention(w, [0, 1])
    q = np.frombuffer(zlib.decompress(base64.b64decode(enc["data"])), dtype=np.uint8).reshape(2, 3, 5, 5)
    back = q / 255.0 * np.array(enc["scale"]).reshape(2, 3, 1, 1)
    assert np.abs(back - w).max() <= w.max() / 255 * 0.51 + 1e-6
    assert (enc["layers"], enc["heads"], enc["n"]) == ([0, 1], 3, 5)


def test_script_json_cannot_close_the_script():
    text = H.script_json({"t": "</script><script>alert(1)</script><!--\u2028"})
    assert "<" not in text and ">" not in text and "\u2028" not in text
    assert json.loads(text)["t"].startswith("</script>")


# ---- the command ----

def test_report_end_to_end(tmp_path, model):
    long_line = " ".join(["movie"] * 40)  # 42 tokens, the model takes 32
    src = tmp_path / "in.txt"
    src.write_text("\n".join(["the movie was good", "", long_line, *INJECT, "我 喜 欢 电 影"]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    res = report(src, "--model", model, "-o", out, "--views", "head,model", "--workers", "0")
    assert res.exit_code == 0, res.output
    assert "skipped 2" in res.output
    doc = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert doc["counts"] == {"done": 4, "skipped": 2}
    assert {s["error"] for s in doc["skipped"]} == {"empty text", "42 tokens, longer than the model's maximum of 32"}
    first = doc["items"][0]
    assert first["prediction"]["label"] in ("negative", "positive")
    assert len(first["entropy"]) == 2 and len(first["entropy"][0]) == 4
    for item in doc["items"]:
        for name in item["files"].values():
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((out / "summary.csv").open(encoding="utf-8")))
    assert [r["status"] for r in rows].count("skipped") == 2
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("<script") == 2 and "<img" not in page  # the injections are data, not markup
    assert "http://" not in page and "https://" not in page
    assert not [p for p in files_under(out) if ".part" in p.name]
    strict = report(src, "--model", model, "-o", tmp_path / "o2", "--strict", "--views", "head")
    assert strict.exit_code == 2


def test_hostile_ids_stay_inside_the_output_folder(tmp_path, model):
    rows = [{"id": i, "text": "the cat sat"} for i in ("../../evil", "/etc/passwd", "..", "a/../../b", "C:\\x")]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    out = tmp_path / "deep" / "out"
    res = report(src, "--model", model, "-o", out, "--workers", "0")
    assert res.exit_code == 0, res.output
    written = [p for p in files_under(tmp_path) if p.parent != tmp_path and p.name != "in.jsonl"]
    assert written and all(out.resolve() in p.resolve().parents for p in written)
    assert len(list((out / "items").iterdir())) == 5


def test_resume_after_an_interrupt_keeps_finished_items(tmp_path, model, monkeypatch):
    from attnviz.models import load_model
    from attnviz.report.batch import ReportConfig, run_report
    from attnviz.report.engines import local as batch  # the local engine paints

    src = tmp_path / "in.txt"
    src.write_text("".join(f"the cat sat on mat {'a ' * i}\n" for i in range(6)), encoding="utf-8")
    items = read_items(src)
    loaded = load_model(model, device="cpu")
    cfg = ReportConfig(out=tmp_path / "out", batch_size=2)
    real, calls = batch.paint, {"n": 0}

    def flaky(job):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(batch, "paint", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_report(loaded, items, cfg)
    doc = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert doc["interrupted"] and doc["counts"]["done"] == 3
    done = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("item.json")}
    assert len(done) == 3
    monkeypatch.setattr(batch, "paint", real)
    result = run_report(loaded, items, ReportConfig(out=tmp_path / "out", batch_size=2, resume=True))
    assert result.resumed == 3 and len(result.records) == 6
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())  # finished items were not redone
    assert [r["id"] for r in result.records] == [i.id for i in items]


def test_worker_processes_give_the_same_pngs(tmp_path, model):
    src = tmp_path / "in.txt"
    src.write_text("the cat sat\na dog ran on the mat\n", encoding="utf-8")
    for w in (0, 1):
        assert report(src, "--model", model, "-o", tmp_path / f"w{w}", "--workers", w).exit_code == 0
    pngs = sorted(p.relative_to(tmp_path / "w0") for p in (tmp_path / "w0").rglob("*.png"))
    assert len(pngs) == 2
    for rel in pngs:
        assert (tmp_path / "w0" / rel).read_bytes() == (tmp_path / "w1" / rel).read_bytes()


def test_image_folder_skips_unreadable_images(tmp_path):
    from PIL import Image

    model = image_classifier(tmp_path / "vit")
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(folder / "a.png")
    (folder / "broken.png").write_bytes(b"not an image")
    Image.new("L", (24, 20)).save(folder / "a.mask.png")  # a ground-truth mask is no input
    out = tmp_path / "out"
    res = report(folder, "--model", model, "-o", out, "--workers", "0")
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [s["id"] for s in doc["skipped"]] == ["broken.png"]
    assert [i["id"] for i in doc["items"]] == ["a.png"]
    assert doc["items"][0]["prediction"]["label"] in ("circle", "square", "triangle")
    assert 'data:image/jpeg;base64,' in (out / "report.html").read_text(encoding="utf-8")


SAMPLES = Path(__file__).resolve().parent.parent / "sample_inputs"


def test_a_multi_label_model_reports_every_class_present(tmp_path):
    out = tmp_path / "out"
    res = report(SAMPLES / "shapes", "--model", "toy-shapes", "-o", out, "--workers", "0")
    assert res.exit_code == 0, res.output
    items = json.loads((out / "summary.json").read_text(encoding="utf-8"))["items"]
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO((out / "summary.csv").read_text(encoding="utf-8")))}
    for item in items:  # the sample images are named after the shapes they hold
        present = item["prediction"]["present"]
        assert sorted(c["label"] for c in present) == sorted(Path(item["id"]).stem.split("-"))
        assert present[0]["label"] == item["prediction"]["label"] and all(c["probability"] > 0.5 for c in present)
        assert rows[item["id"]]["prediction"] == ", ".join(c["label"] for c in present)
    res = report(SAMPLES / "shapes" / "circle.png", "--model", "toy-shapes", "-o", tmp_path / "one", "--workers", "0")
    assert res.exit_code == 0, res.output  # one image file is one item, not a text file to decode
    one = json.loads((tmp_path / "one" / "summary.json").read_text(encoding="utf-8"))["items"]
    assert [i["id"] for i in one] == ["circle.png"] and one[0]["prediction"]["present"][0]["label"] == "circle"
    res = report(SAMPLES / "sentiment.txt", "--model", "toy-sentiment", "-o", tmp_path / "s", "--workers", "0")
    assert res.exit_code == 0, res.output
    single = json.loads((tmp_path / "s" / "summary.json").read_text(encoding="utf-8"))["items"]
    assert single and all("present" not in i["prediction"] for i in single)  # one class per text


@pytest.mark.parametrize("args, code", [
    (["missing.txt"], 2),
    (["{src}", "--shard", "3/2"], 2),
    (["{src}", "--views", "nope"], 2),
    (["{src}", "--batch-size", "0"], 2),
    (["{src}", "--model", "/no/such/model"], 3),
    (["{src}", "--layer", "99"], 2),
    (["{src}", "--head", "-99"], 2),
    (["{src}", "--workers", "-1"], 2),
    (["{empty}"], 2),
])
def test_bad_usage_is_one_line_and_an_exit_code(tmp_path, model, args, code):
    src, empty = tmp_path / "in.txt", tmp_path / "empty.txt"
    src.write_text("the cat\n", encoding="utf-8")
    empty.write_text("\n", encoding="utf-8")
    args = [a.replace("{src}", str(src)).replace("{empty}", str(empty)) for a in args]
    if "--model" not in args:
        args += ["--model", model]
    res = report(*args, "-o", tmp_path / "out")
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output and len(res.stderr.strip().splitlines()) == 1  # the error alone
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_inputs_of_the_wrong_kind_for_the_model_are_refused_up_front(tmp_path, model):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (16, 16)).save(folder / "a.png")
    res = report(folder, "--model", model, "-o", tmp_path / "out")
    assert res.exit_code == 2 and "the inputs are images, but" in res.output and "reads text" in res.output
    (tmp_path / "in.txt").write_text("the cat\n", encoding="utf-8")
    res = report(tmp_path / "in.txt", "--model", "toy-shapes", "-o", tmp_path / "out")
    assert res.exit_code == 2 and "the inputs are texts, but toy-shapes reads images" in res.output
    assert res.stderr.strip().splitlines() == [res.stderr.strip()] and "report" not in res.stderr  # no progress bar
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("toy", ["toy-sentiment", "toy-induction", "toy-reverse"])
def test_built_in_toys_report_texts_of_different_lengths(tmp_path, toy):
    """The toys' character tokenizer returns tensors unless told otherwise; measuring lengths must not ask for them."""
    src = tmp_path / "in.txt"
    src.write_text("good\nnot good at all\n这部电影很好\n", encoding="utf-8")  # toy-reverse takes 24 tokens
    res = report(src, "--model", toy, "--methods", "saliency", "-o", tmp_path / "out", "--strict")
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert len(doc["items"]) == 3 and not doc["skipped"]


def test_a_full_clip_model_captures_and_reports_images(tmp_path):
    """Its forward wants text too: images run through its vision tower; a report has no prompts, so no CAM."""
    from PIL import Image
    from conftest import save_vision

    from attnviz.recording import capture
    from attnviz.models import load_model

    folder = save_vision("clip", tmp_path / "clip")
    loaded = load_model(str(folder), device="cpu")
    picture = Image.new("RGB", (40, 30), (200, 30, 30))
    maps = capture(loaded, [picture])
    assert maps.weights.shape[:3] == (loaded.num_layers, 1, loaded.num_heads) and maps.tokens[0][0] == "[CLS]"
    (tmp_path / "imgs").mkdir()
    picture.save(tmp_path / "imgs" / "red.png")
    res = report(tmp_path / "imgs", "--model", folder, "-o", tmp_path / "out", "--strict")
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert [item["id"] for item in doc["items"]] == ["red.png"] and "cam" not in doc["items"][0]
