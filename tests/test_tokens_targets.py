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
