"""Encoder-decoder output: the model's own generate (cache, generation_config), a cut said, a given --answer."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from attnviz.attribution.tokens import prepare
from attnviz.cli import app
from attnviz.errors import BadInput
from attnviz.models import load_model
from attnviz.models.seq2seq import Answers
from attnviz.recording import capture
from conftest import save

runner = CliRunner()
TEXTS = ["the cat sat on the mat", "a dog ran far"]


@pytest.fixture(scope="module", params=["t5", "bart"])
def folder(request, tmp_path_factory):
    return save(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture()
def loaded(folder):
    return load_model(str(folder), device="cpu")


def test_the_output_is_the_models_own_generate_with_its_generation_config(loaded):
    config = loaded.model.generation_config
    config.forced_bos_token_id = 9  # e.g. mBART's language token: the model's generate forces it first
    calls = []
    real = loaded.model.generate
    loaded.model.generate = lambda **kw: calls.append(kw) or real(**kw)
    enc = loaded.encode(TEXTS, answers=Answers(max_new_tokens=6))
    want = real(**{k: enc.batch[k] for k in ("input_ids", "attention_mask")}, max_new_tokens=6)
    assert len(calls) == 1 and calls[0]["use_cache"] is True
    assert torch.equal(enc.batch["decoder_input_ids"], want)
    assert enc.batch["decoder_input_ids"][:, :2].tolist() == [[config.decoder_start_token_id, 9]] * 2


def test_an_output_cut_at_the_limit_is_said_and_one_that_ends_is_not(loaded):
    enc = loaded.encode(TEXTS[:1], answers=Answers(max_new_tokens=3))
    assert enc.batch["decoder_input_ids"].shape == (1, 4)
    assert enc.notes == ["input 1 has its output cut at 3 new tokens before its end token; --max-new-tokens allows more"]
    loaded.model.generation_config.forced_eos_token_id = loaded.meta["eos"]  # ends at the limit, with its end
    ended = loaded.encode(TEXTS, answers=Answers(max_new_tokens=3))
    assert ended.notes == [] and ended.batch["decoder_input_ids"][:, -1].tolist() == [loaded.meta["eos"]] * 2


def test_a_given_answer_is_read_by_the_decoder_and_explained(loaded):
    enc = loaded.encode(TEXTS, answers=Answers(given=("the cat",)))
    ids = enc.batch["decoder_input_ids"]
    words = loaded.tokenizer("the cat", add_special_tokens=False)["input_ids"]
    start, eos = loaded.model.generation_config.decoder_start_token_id, loaded.meta["eos"]
    for row, mask in zip(ids.tolist(), enc.decoder_mask.tolist()):
        assert row[0] == start and row[-1] == eos and row[-1 - len(words):-1] == words and all(mask)
    loaded.answers = Answers(given=("the cat",))
    maps = capture(loaded, TEXTS)
    assert maps.cross.shape[-2:] == (ids.shape[1], enc.mask.shape[1])
    ctx = prepare(loaded, TEXTS)
    at = ctx.target.rows.argmax(1).tolist()  # the first position whose next output token is a word
    assert [ids[e, a + 1].item() for e, a in enumerate(at)] == [words[0]] * 2
    with torch.no_grad():
        logits = loaded.model(**ctx.batch).logits.float()
    want = [logits[e, a].softmax(-1)[words[0]].item() for e, a in enumerate(at)]
    assert ctx.target.probability == pytest.approx(want, rel=1e-5)


def test_one_answer_per_input_and_a_count_that_does_not_fit(loaded):
    enc = loaded.encode(TEXTS, answers=Answers(given=("the cat", "a dog ran")))
    assert enc.decoder_mask.sum(1).tolist()[0] < enc.decoder_mask.sum(1).tolist()[1]
    with pytest.raises(BadInput, match="3 answers for 2 inputs"):
        loaded.encode(TEXTS, answers=Answers(given=("a", "b", "c")))


def test_the_toy_decodes_step_by_step_and_says_a_cut():
    loaded = load_model("toy-reverse", device="cpu")
    enc = loaded.encode(["jumping"], answers=Answers(max_new_tokens=3))
    assert enc.decoder_tokens[0] == ["[BOS]", "g", "n", "i"] and "cut at 3" in enc.notes[0]
    forced = loaded.encode(["abc"], answers=Answers(given=("xyz",)))
    assert forced.decoder_tokens[0] == ["[BOS]", "x", "y", "z", "[EOS]"]


def test_the_cli_takes_answer_and_max_new_tokens(folder, tmp_path):
    res = runner.invoke(app, ["heatmap", TEXTS[0], "--model", str(folder), "--stack", "cross", "--max-new-tokens", "2",
                              "--out", str(tmp_path / "h.png")])
    assert res.exit_code == 0 and "cut at 2 new tokens" in res.stderr and (tmp_path / "h.png").exists()
    res = runner.invoke(app, ["capture", *TEXTS, "--model", str(folder), "--answer", "the cat", "--answer", "a dog",
                              "--out", str(tmp_path / "m.safetensors")])
    assert res.exit_code == 0, res.output
    from attnviz.maps import AttentionMaps

    saved = AttentionMaps.load(tmp_path / "m.safetensors")
    assert [[t for t, m in zip(row, mask) if m][-3:-1] for row, mask in
            zip(saved.decoder_tokens, saved.decoder_mask.tolist())] == [["the", "cat"], ["a", "dog"]]


@pytest.mark.parametrize("args, message", [
    (["heatmap", "hi", "--answer", "x"], "--answer is for encoder-decoder models"),
    (["capture", "hi", "--model", "toy-induction", "--max-new-tokens", "5"], "`attnviz generate` explains"),
    (["heatmap", "hi", "--max-new-tokens", "64"], "--max-new-tokens is for encoder-decoder models"),  # the default's value
    (["attribute", "hi", "--max-new-tokens", "0"], "--max-new-tokens must be a whole number"),
])
def test_answer_options_on_a_model_they_do_not_fit_are_one_line_exit_2(args, message, tmp_path):
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "x.png" if args[0] == "heatmap" else tmp_path / "x")])
    assert res.exit_code == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_batch_report_says_which_items_output_was_cut(loaded, tmp_path):
    from attnviz.report.batch import ReportConfig, run_report
    from attnviz.report.inputs import read_items

    loaded.answers = Answers(max_new_tokens=2)
    rows = loaded.encode(TEXTS).batch["decoder_input_ids"].tolist()
    cut = [loaded.meta["eos"] not in row[1:] for row in rows]
    assert any(cut)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    for batch_size in (1, 2):
        result = run_report(loaded, read_items(src), ReportConfig(out=tmp_path / f"r{batch_size}", views=(),
                                                                  batch_size=batch_size))
        said = {r["text"]: any("cut at 2 new tokens" in n for n in r["notes"]) for r in result.records}
        assert said == dict(zip(TEXTS, cut))
