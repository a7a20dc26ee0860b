"""Targets as people type them, what is explained said in words with numbers that read, and positions counted
over each input's real tokens whichever side pads (BLOOM-style left padding)."""

from __future__ import annotations

import pytest
import torch
from shipped import save_lm
from typer.testing import CliRunner

from attnviz.attribution.tokens import prepare
from attnviz.cli import app
from attnviz.errors import BadInput
from attnviz.models import load_model

runner = CliRunner()
PROMPT = "Paris is the capital of"


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    return load_model(str(save_lm("gpt2", tmp_path_factory.mktemp("gpt2"))))


def _target(loaded, target, texts=(PROMPT,), **kw):
    return prepare(loaded, list(texts), target=target, **kw).target


def test_plain_text_targets_become_the_token_the_model_would_continue_with(gpt2):
    tok = gpt2.tokenizer
    spaced = tok(" Paris", add_special_tokens=False)["input_ids"]
    for typed in (" Paris", "Paris"):
        t = _target(gpt2, typed)
        assert t.describe[0].startswith("next token '␣Paris' after '␣of'")
        assert t.notes and f"--target {typed!r} became" in t.notes[0]
        assert t.probability[0] == pytest.approx(_target(gpt2, str(spaced[0])).probability[0])
    raw = tok.convert_ids_to_tokens(spaced[:1])[0]  # the vocabulary's own spelling still works
    assert _target(gpt2, raw).probability == _target(gpt2, " Paris").probability and not _target(gpt2, raw).notes
    assert "first is explained" in _target(gpt2, "France").notes[0]  # several tokens: the first, said so


def test_untypable_targets_are_refused(gpt2):
    with pytest.raises(BadInput, match="token id 99999 is out of range"):
        _target(gpt2, "99999")


def test_the_causal_line_names_the_input_token_and_the_prediction(gpt2):
    t = _target(gpt2, None)
    last = len(gpt2.tokenizer(PROMPT)["input_ids"]) - 1
    assert t.describe[0] == f"next token {t.prediction[0]!r} after '␣of' (input position {last})"


def test_numbers_print_with_significant_digits():
    from attnviz.report.attribution import _fmt

    assert _fmt(1.2e-05) == "1.2e-05" and _fmt(0.5) == "0.5" and _fmt(0.12345) == "0.123"


def test_cli_says_which_tokens_a_target_became(gpt2, tmp_path):
    res = runner.invoke(app, ["attribute", PROMPT, "--model", gpt2.name, "--target", "France", "--method",
                              "grad-x-input", "--no-faithfulness", "--out", str(tmp_path / "a.json")])
    assert res.exit_code == 0, res.output
    assert "--target 'France' became '␣Fr'" in res.output and "after '␣of'" in res.output
    assert "p = 0.000" not in res.output


@pytest.mark.parametrize("family", ["bloom", "llama"])
def test_left_padding_never_explains_a_pad_token(tmp_path, family):
    left = load_model(str(save_lm(family, tmp_path / "left", padding_side="left")))
    assert left.tokenizer.padding_side == "left"
    texts = [PROMPT + " France and the capital of Italy is", "hello world"]
    batch = prepare(left, texts, target=None)
    mask = batch.mask
    assert int(mask[1, 0]) == 0  # the short input is padded on the left
    at = batch.target.rows.argmax(-1)
    assert all(int(mask[e, at[e]]) == 1 for e in range(2)) and int(at[1]) == mask.shape[1] - 1
    alone = prepare(left, texts[1:], target=None).target
    assert batch.target.describe[1] == alone.describe[0]  # positions count the input's own tokens
    assert batch.target.probability[1] == pytest.approx(alone.probability[0], abs=1e-4)
    first = prepare(left, texts, target=None, target_token=0).target
    assert int(first.rows[1].argmax()) == int(torch.nonzero(mask[1]).min())  # position 0: the first real token


def _logprob_of_text(loaded, prompt: str, text_ids: list[int]) -> float:
    """log p(text | prompt) from the model's own logits, one continuation token at a time."""
    ids = loaded.tokenizer(prompt)["input_ids"] + text_ids
    with torch.no_grad():
        logits = loaded.model(input_ids=torch.tensor([ids])).logits[0].double().log_softmax(-1)
    start = len(ids) - len(text_ids)
    return sum(float(logits[start - 1 + i, t]) for i, t in enumerate(text_ids))


@pytest.mark.parametrize("family, side", [("gpt2", "right"), ("bloom", "left"), ("llama", "right")])
def test_target_span_is_the_sum_of_the_typed_texts_log_probabilities(family, side, tmp_path):
    loaded = load_model(str(save_lm(family, tmp_path / family, padding_side=side)))
    typed = "France and Rome"
    ids = loaded.tokenizer(typed if family == "llama" else " " + typed, add_special_tokens=False)["input_ids"]
    assert len(ids) > 2
    texts = [PROMPT, "We went to"]
    ctx = prepare(loaded, texts, target=typed, target_span=True)
    want = [_logprob_of_text(loaded, t, ids) for t in texts]
    with torch.no_grad():
        scores = ctx.target(loaded.model(**ctx.batch)).tolist()
    assert scores == pytest.approx(want, abs=1e-4)
    assert ctx.target.probability == pytest.approx([float(torch.tensor(w).exp()) for w in want], rel=1e-4)
    assert "--target-span explains them together" in ctx.target.notes[0]
    for e, text in enumerate(texts):  # the appended tokens (all but the last) are context, never hidden
        n = len(loaded.tokenizer(text)["input_ids"])
        appended = ctx.special[e].nonzero().flatten().tolist()
        assert set(range(n, n + len(ids) - 1)) <= set(appended) and not set(range(1, n)) & set(appended)


def test_target_span_is_refused_where_it_does_not_fit(gpt2, tmp_path):
    with pytest.raises(BadInput, match="--target-span needs the text"):
        prepare(gpt2, [PROMPT], target_span=True)
    with pytest.raises(BadInput, match="leave out --target-token"):
        prepare(gpt2, [PROMPT], target="France", target_token=1, target_span=True)
    res = runner.invoke(app, ["attribute", "a movie", "--model", "toy-sentiment", "--target", "positive",
                              "--target-span", "--method", "grad-x-input", "--out", str(tmp_path / "x.json")])
    assert res.exit_code == 2 and "--target-span explains a text of several tokens after a causal LM" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_target_span_explains_the_whole_text(gpt2, tmp_path):
    out = tmp_path / "span.json"
    res = runner.invoke(app, ["attribute", PROMPT, "--model", gpt2.name, "--target", "France and Rome",
                              "--target-span", "--method", "grad-x-input", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "explains the text '␣France␣and␣Rome' after the input" in res.stdout
    assert "--target-span explains them together" in res.stderr
    import json

    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["examples"][0]["tokens"] == ["Paris", "␣is", "␣the", "␣capital", "␣of"]  # not the appended ones


def test_target_span_on_a_toy_reads_the_induction_copy():
    loaded = load_model("toy-induction", device="cpu")
    ctx = prepare(loaded, ["abcdabc"], target="da", target_span=True)  # the trained induction head copies "d", "a"
    assert ctx.target.probability[0] > 0.9 and ctx.context[0].tolist().count(True) == 1


def test_the_causal_line_reads_a_byte_piece_in_its_input():
    """The last input token finishes 影 over several byte pieces: read alone it would be '�'."""
    from pathlib import Path

    loaded = load_model(str(Path(__file__).resolve().parent.parent / "sample_inputs" / "gpt2-zh"), device="cpu")
    assert _target(loaded, None, texts=("我喜欢这部电影",)).describe[0].startswith("next token") and \
        "after '+影'" in _target(loaded, None, texts=("我喜欢这部电影",)).describe[0]


def test_target_span_of_one_token_is_its_log_probability_too(gpt2):
    """A span of one token is explained as the log-probability its description and note promise, not its logit."""
    one = gpt2.tokenizer(" Paris", add_special_tokens=False)["input_ids"]
    assert len(one) == 1
    ctx = prepare(gpt2, [PROMPT], target="Paris", target_span=True)
    with torch.no_grad():
        score = float(ctx.target(gpt2.model(**ctx.batch))[0])
    want = _logprob_of_text(gpt2, PROMPT, one)
    assert "log-probability" in ctx.target.describe[0] and score == pytest.approx(want, abs=1e-4)
    assert ctx.target.probability[0] == pytest.approx(float(torch.tensor(want).exp()), rel=1e-4)
