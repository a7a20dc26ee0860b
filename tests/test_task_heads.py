"""Task heads: a token classifier explains a label at one token, a question-answering model the start or end of
its answer span (inputs 'QUESTION ||| CONTEXT'); a multiple-choice head is shown as its encoder, and said so.

Tiny seeded BERT models built from their configs with a WordPiece tokenizer read from a vocabulary file, and a
RoBERTa one with the byte-level BPE of tests/shipped.py; each target is checked against the model's own logits,
computed here with transformers' eager attention on the tokenizer's own encoding."""

from __future__ import annotations

import json

import pytest
import torch
import transformers as tf
from shipped import byte_bpe
from typer.testing import CliRunner

from attnviz.attribution.tokens import prepare
from attnviz.cli import app
from attnviz.errors import BadInput
from attnviz.models import load_model

runner = CliRunner()
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + ("who where what lives is in the a cat sat on mat john mary "
                                                          "paris rome and . ? ,").split()
NER = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, initializer_range=0.3)
SENTENCE = "john lives in paris"
QUESTION = "who lives in paris ? ||| john and mary sat on the mat in rome , john lives in paris ."


def _wordpiece(folder):
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n", encoding="utf-8")
    return tf.BertTokenizerFast(vocab=str(folder / "vocab.txt"))


def _save(folder, cls, config, tokenizer, seed=0):
    torch.manual_seed(seed)
    cls(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("heads")
    tok = _wordpiece(root)
    bert = dict(SMALL, vocab_size=len(WORDS))
    rob = byte_bpe(roberta=True)
    return {
        "ner": _save(root / "ner", tf.BertForTokenClassification, tf.BertConfig(
            **bert, id2label=NER, label2id={v: k for k, v in NER.items()}), tok),
        "qa": _save(root / "qa", tf.BertForQuestionAnswering, tf.BertConfig(**bert), tok),
        "qa-roberta": _save(root / "qa-roberta", tf.RobertaForQuestionAnswering, tf.RobertaConfig(
            **SMALL, vocab_size=len(rob), max_position_embeddings=130, pad_token_id=1, bos_token_id=0,
            eos_token_id=2), rob),
        "mc": _save(root / "mc", tf.BertForMultipleChoice, tf.BertConfig(**bert), tok),
    }


def _eager(folder, auto):
    return getattr(tf, auto).from_pretrained(folder, attn_implementation="eager").eval()


def _scores(loaded, texts, **target):
    """(prepared context, the target's scores (B,) on the model's own output for the batch)."""
    ctx = prepare(loaded, texts, **target)
    with torch.no_grad():
        out = loaded.model(**ctx.batch)
    return ctx, ctx.target(out)


def test_a_token_classifier_loads_its_head_and_labels(folders):
    loaded = load_model(str(folders["ner"]), device="cpu")
    assert (loaded.task, loaded.kind, loaded.architecture) == ("token-classification", "encoder",
                                                               "BertForTokenClassification")
    assert isinstance(loaded.model.classifier, torch.nn.Linear) and loaded.labels == list(NER.values())


def test_the_token_label_target_is_the_models_logit(folders):
    loaded = load_model(str(folders["ner"]), device="cpu")
    with torch.no_grad():
        logits = _eager(folders["ner"], "AutoModelForTokenClassification")(
            **loaded.tokenizer(SENTENCE, return_tensors="pt")).logits[0]  # (S, C)
    ctx, score = _scores(loaded, [SENTENCE], target="B-LOC", target_token=4)
    assert ctx.tokens[0][4] == "paris" and ctx.target.describe[0] == "label B-LOC of token 'paris' (position 4)"
    assert float(score[0]) == pytest.approx(float(logits[4, 3]), abs=1e-5)
    assert ctx.target.prediction[0] == NER[int(logits[4].argmax())]
    # default: the text token where a label other than O is likeliest, and its predicted label
    probs = logits.softmax(-1)[1:-1, 1:].amax(-1)  # text tokens only, entity labels only
    at = int(probs.argmax()) + 1
    ctx, score = _scores(loaded, [SENTENCE])
    assert int(ctx.target.rows[0].argmax()) == at and ctx.target.index[0] == int(logits[at].argmax())
    assert float(score[0]) == pytest.approx(float(logits[at].max()), abs=1e-5)
    assert ctx.target.probability[0] == pytest.approx(float(logits[at].softmax(-1).max()), abs=1e-5)
    # --target alone: the token where that label is likeliest
    ctx, _ = _scores(loaded, [SENTENCE], target="I-PER")
    assert int(ctx.target.rows[0].argmax()) == int(logits.softmax(-1)[1:-1, 2].argmax()) + 1


def test_a_question_answering_model_reads_question_and_context_as_a_pair(folders):
    loaded = load_model(str(folders["qa"]), device="cpu")
    assert (loaded.task, loaded.architecture) == ("question-answering", "BertForQuestionAnswering")
    assert isinstance(loaded.model.qa_outputs, torch.nn.Linear)
    question, context = (part.strip() for part in QUESTION.split("|||"))
    enc = loaded.encode([QUESTION])
    own = loaded.tokenizer(question, context, return_tensors="pt")  # as the pipeline encodes it
    assert torch.equal(enc.batch["input_ids"].cpu(), own["input_ids"])
    assert torch.equal(enc.batch["token_type_ids"].cpu(), own["token_type_ids"])
    assert enc.tokens[0][:7] == ["[CLS]", "who", "lives", "in", "paris", "?", "[SEP]"]


def _best_span(start, end, first):
    """Brute force: the highest start + end logit with first <= s <= e < last (the context)."""
    n = len(start) - 1  # the final [SEP] / </s> is not context
    pairs = [(float(start[s] + end[e]), s, e) for s in range(first, n) for e in range(s, min(n, s + 30))]
    return max(pairs)[1:]


@pytest.mark.parametrize("name", ["qa", "qa-roberta"])
def test_the_answer_targets_are_the_models_start_and_end_logits(folders, name):
    loaded = load_model(str(folders[name]), device="cpu")
    question, context = (part.strip() for part in QUESTION.split("|||"))
    own = loaded.tokenizer(question, context, return_tensors="pt")
    with torch.no_grad():
        out = _eager(folders[name], "AutoModelForQuestionAnswering")(**own)
    start, end = out.start_logits[0], out.end_logits[0]  # (S,)
    seps = [i for i, t in enumerate(own["input_ids"][0].tolist()) if t in loaded.tokenizer.all_special_ids]
    s, e = _best_span(start, end, seps[1 + (name == "qa-roberta")] + 1)
    answer = loaded.tokenizer.decode(own["input_ids"][0, s:e + 1], skip_special_tokens=True).strip()
    for which, at, logit in (("start", s, start[s]), ("end", e, end[e])):
        ctx, score = _scores(loaded, [QUESTION], target=which)
        assert int(ctx.target.rows[0].argmax()) == at and float(score[0]) == pytest.approx(float(logit), abs=1e-5)
        assert ctx.target.prediction == [answer] and ctx.target.describe[0].startswith(f"answer {which} at ")
    ctx, score = _scores(loaded, [QUESTION], target="span")
    assert float(score[0]) == pytest.approx(float(start[s] + end[e]), abs=1e-5)
    p = float(start.softmax(-1)[s] * end.softmax(-1)[e])
    assert ctx.target.probability[0] == pytest.approx(p, rel=1e-4)
    assert ctx.target.notes[0].startswith(f"input 1: the predicted answer is {answer!r}")
    ctx, score = _scores(loaded, [QUESTION], target="end", target_token=3)  # why the answer would end at 'in'
    assert float(score[0]) == pytest.approx(float(end[3]), abs=1e-5)


def test_question_answering_inputs_are_checked(folders):
    loaded = load_model(str(folders["qa"]), device="cpu")
    with pytest.raises(BadInput, match="give each input as 'QUESTION \\|\\|\\| CONTEXT'"):
        prepare(loaded, ["john lives in paris"])
    with pytest.raises(BadInput, match="input 1 has no context"):
        prepare(loaded, ["who lives in paris ? |||  "])
    with pytest.raises(BadInput, match="input 2 has no '\\|\\|\\|'"):
        prepare(loaded, [QUESTION, "john lives in paris"])
    with pytest.raises(BadInput, match="valid targets: start, end, span"):
        prepare(loaded, [QUESTION], target="middle")


def test_a_multiple_choice_head_is_shown_as_its_encoder_and_said_so(folders):
    loaded = load_model(str(folders["mc"]), device="cpu")
    assert (loaded.task, loaded.architecture) == ("embedding", "BertModel")
    note = loaded.meta["head"]
    assert note.startswith("BertForMultipleChoice: attnviz does not support its multiple-choice head")
    assert "loaded it without the head, as BertModel: its attention is shown" in note and "--reference" in note
    assert loaded.encode(["the cat sat"]).notes[0] == note
    res = runner.invoke(app, ["info", str(folders["mc"])])
    assert res.exit_code == 0 and "multiple-choice head" in res.output


def run(*args):
    return runner.invoke(app, [*args, "--device", "cpu"])


def test_cli_explains_a_token_label(folders, tmp_path):
    out = tmp_path / "ner.json"
    res = run("attribute", SENTENCE, "--model", str(folders["ner"]), "--target", "B-PER", "--target-token", "1",
              "--method", "grad-x-input,rollout", "--out", str(out))
    assert res.exit_code == 0, res.output
    ex = json.loads(out.read_text(encoding="utf-8"))["examples"][0]
    assert ex["target"] == "label B-PER of token 'john' (position 1)"
    res = run("attribute", SENTENCE, "--model", str(folders["ner"]), "--target", "B-ORG", "--out", str(out))
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "unknown label 'B-ORG'; valid labels: 0 O, 1 B-PER, 2 I-PER, 3 B-LOC, 4 I-LOC" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_cli_explains_an_answer_and_refuses_a_bad_end(folders, tmp_path):
    out = tmp_path / "qa.json"
    res = run("attribute", QUESTION, "--model", str(folders["qa"]), "--target", "end", "--method", "saliency",
              "--out", str(out))
    assert res.exit_code == 0, res.output
    assert "the predicted answer is" in res.output
    ex = json.loads(out.read_text(encoding="utf-8"))["examples"][0]
    assert ex["target"].startswith("answer end at ") and ex["tokens"][6] == "[SEP]"
    for args, message in ((["--target", "middle"], "unknown answer end 'middle'; valid targets: start, end, span"),
                          (["--reference", "x"], "--reference does not fit")):
        res = run("attribute", QUESTION, "--model", str(folders["qa"]), *args, "--out", str(tmp_path / "b.json"))
        assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "b.json").exists()


@pytest.mark.parametrize("name, text", [("ner", SENTENCE), ("qa", QUESTION), ("mc", "the cat sat")])
def test_heatmaps_show_the_encoder_of_every_head(folders, tmp_path, name, text):
    out = tmp_path / f"{name}.png"
    res = run("heatmap", text, "--model", str(folders[name]), "--out", str(out))
    assert res.exit_code == 0, res.output
    assert out.read_bytes().startswith(b"\x89PNG")
    assert ("multiple-choice head" in res.output) == (name == "mc")


def test_a_batch_report_keeps_each_items_head_and_cut_notes(folders, tmp_path):
    """A report's items carry what the batch said of them: a context cut to fit, a head shown without it."""
    from attnviz.report.batch import ReportConfig, run_report
    from attnviz.report.inputs import read_items

    src = tmp_path / "qa.txt"
    src.write_text(f"{QUESTION}\nwho lives in paris ? ||| {' '.join(['john lives in paris .'] * 110)}\n", encoding="utf-8")
    qa = load_model(str(folders["qa"]), device="cpu")
    result = run_report(qa, read_items(src), ReportConfig(out=tmp_path / "qa", views=(), on_long="truncate"))
    assert [len(r["notes"]) for r in result.records] == [0, 1]
    assert "context" in result.records[1]["notes"][0] and "512" in result.records[1]["notes"][0]
    src.write_text("the cat sat\na dog\n", encoding="utf-8")
    mc = load_model(str(folders["mc"]), device="cpu")
    result = run_report(mc, read_items(src), ReportConfig(out=tmp_path / "mc", views=()))
    assert [r["notes"] for r in result.records] == [[mc.meta["head"]]] * 2


def test_a_report_measures_a_question_and_context_as_the_pair_the_model_reads(folders, tmp_path):
    """The pair [CLS] q [SEP] c [SEP] fits the model's 512 positions; the raw text, with its '|||', would not."""
    from attnviz.report.batch import ReportConfig, run_report
    from attnviz.report.inputs import read_items

    qa = load_model(str(folders["qa"]), device="cpu")
    text = f"who lives in paris ? ||| {' '.join(['john lives in paris .'] * 100)} the cat sat on"
    assert len(qa.encode([text]).batch["input_ids"][0]) == qa.max_length == 512 and not qa.encode([text]).notes
    assert len(qa.tokenizer(text)["input_ids"]) > qa.max_length
    src = tmp_path / "qa.txt"
    src.write_text(text + "\n", encoding="utf-8")
    result = run_report(qa, read_items(src), ReportConfig(out=tmp_path / "qa", views=()))
    assert result.skipped == [] and len(result.records[0]["tokens"]) == 512
