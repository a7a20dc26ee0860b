"""The task-head models shipped in the clone (scripts/make_task_models.py): sample_inputs/bert-ner, a token
classifier, and sample_inputs/bert-qa, a question-answering model. They load with their heads, tag and answer
the README's examples as they were trained to, are what the script writes, and the README's examples on them
run as printed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from test_readme_examples import _commands
from typer.testing import CliRunner

from attnviz.attribution.tokens import prepare
from attnviz.cli import app
from attnviz.models import load_model

ROOT = Path(__file__).resolve().parent.parent
NER, QA = ROOT / "sample_inputs" / "bert-ner", ROOT / "sample_inputs" / "bert-qa"
LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
SENTENCE = "Marie Curie was born in Warsaw and worked in Paris."
TAGS = {"Marie": "B-PER", "Curie": "I-PER", "Warsaw": "B-LOC", "Paris": "B-LOC"}  # every other word is O
BORN = f"Where was Marie Curie born? ||| {SENTENCE}"
WORKED = f"Where did Marie Curie work? ||| {SENTENCE}"


def test_the_folders_load_with_their_heads_and_labels():
    ner = load_model(str(NER), device="cpu")
    assert (ner.task, ner.kind, ner.architecture) == ("token-classification", "encoder", "BertForTokenClassification")
    assert isinstance(ner.model.classifier, torch.nn.Linear) and ner.labels == LABELS
    qa = load_model(str(QA), device="cpu")
    assert (qa.task, qa.kind, qa.architecture) == ("question-answering", "encoder", "BertForQuestionAnswering")
    assert isinstance(qa.model.qa_outputs, torch.nn.Linear) and "head" not in qa.meta
    for folder in (NER, QA):
        assert sum(p.stat().st_size for p in folder.iterdir()) < 200_000


def test_the_token_classifier_tags_the_readme_sentence():
    loaded = load_model(str(NER), device="cpu")
    enc = loaded.encode([SENTENCE])
    with torch.no_grad():
        predicted = loaded.model(**enc.batch).logits[0].argmax(-1).tolist()
    words = enc.tokens[0][1:-1]  # [CLS] ... [SEP]: every word is one token
    assert words == ["Marie", "Curie", "was", "born", "in", "Warsaw", "and", "worked", "in", "Paris", "."]
    assert [LABELS[i] for i in predicted[1:-1]] == [TAGS.get(w, "O") for w in words]
    ctx = prepare(loaded, [SENTENCE], target="B-LOC", target_token=10)  # as the README explains it
    assert ctx.target.describe == ["label B-LOC of token 'Paris' (position 10)"]
    assert ctx.target.prediction == ["B-LOC"] and ctx.target.probability[0] > 0.9


def test_the_question_answering_model_finds_the_readme_answer():
    loaded = load_model(str(QA), device="cpu")
    for text, answer in ((BORN, "Warsaw"), (WORKED, "Paris")):  # one context, the answer the question asks for
        ctx = prepare(loaded, [text], target="span")
        assert ctx.target.prediction == [answer], text
        assert ctx.target.describe[0].startswith(f"answer span from {answer!r}") and ctx.target.probability[0] > 0.5
    ctx = prepare(loaded, [BORN], target="start")
    assert ctx.target.describe == ["answer start at 'Warsaw' (position 13)"]


def test_the_readme_examples_on_the_task_models_run_as_written(tmp_path, monkeypatch):
    """Each README example whose --model is bert-ner or bert-qa, run from a scratch folder: exit 0, and its
    output file written there."""
    examples = [cmd for cmd in _commands() for flag, value in zip(cmd, cmd[1:])
                if flag in ("--model", "-m") and value.rstrip("/") in ("sample_inputs/bert-ner", "sample_inputs/bert-qa")]
    assert {cmd[cmd.index("--model") + 1] for cmd in examples} == {"sample_inputs/bert-ner", "sample_inputs/bert-qa"}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()  # made by the README's first command, which writes its PNGs there
    for cmd in examples:
        args = [str(ROOT / a) if a.startswith("sample_inputs/") else a for a in cmd[1:]]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, (cmd, res.output)
        out = cmd[cmd.index("--out") + 1]
        assert out.startswith("outputs/") and (tmp_path / out).stat().st_size > 0  # as the other examples
        if "bert-qa" in cmd[cmd.index("--model") + 1]:
            assert "the predicted answer is 'Warsaw'" in res.output
        else:
            assert "label B-LOC of token 'Paris'" in res.output
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(cmd[cmd.index("--out") + 1] for cmd in examples)


def _script():
    spec = importlib.util.spec_from_file_location("make_task_models", ROOT / "scripts" / "make_task_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _outputs(folder: Path, script) -> list[torch.Tensor]:
    """The folder's model on the script's own training inputs: tags (B, S), or answer starts and ends (B,)."""
    import transformers as tf

    core, _ = script.tokenizer()
    if folder.name == "bert-ner":
        batch, labels = script.ner_data(core)
        with torch.no_grad():
            return [tf.BertForTokenClassification.from_pretrained(folder).eval()(**batch).logits.argmax(-1)[labels >= 0]]
    batch, _, _ = script.qa_data(core)
    with torch.no_grad():
        out = tf.BertForQuestionAnswering.from_pretrained(folder).eval()(**batch)
    return [out.start_logits.argmax(-1), out.end_logits.argmax(-1)]


@pytest.mark.slow
def test_the_shipped_task_models_are_what_the_script_writes(tmp_path):
    """scripts/make_task_models.py rebuilds both folders: the same configs and tokenizers, byte for byte; the same
    tensors (names, shapes, dtypes; the tagger's weights to 0.1), and the same tags and answers on every sentence and
    question it trains on. Two runs on one machine write the same bytes, but summing in another order (another CPU,
    thread count or torch build) moves the question-answering weights after 500 Adam steps: by up to about 0.06 with
    two threads instead of one, by 0.38 on another CPU (an AVX-512 one) where the model still answers the same. So
    that model is compared by what it predicts, not by a tolerance on its weights."""
    import subprocess
    import sys

    from safetensors.torch import load_file

    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_task_models.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bert-ner", "bert-qa"]
    script = _script()
    for shipped in (NER, QA):
        made = tmp_path / shipped.name
        assert sorted(p.name for p in made.iterdir()) == sorted(p.name for p in shipped.iterdir())
        for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
            assert (made / name).read_bytes() == (shipped / name).read_bytes(), (shipped.name, name)
        new, old = load_file(made / "model.safetensors"), load_file(shipped / "model.safetensors")
        assert {k: (t.shape, t.dtype) for k, t in new.items()} == {k: (t.shape, t.dtype) for k, t in old.items()}
        if shipped == NER:  # the tagger's weights stay within 2e-5 across machines
            assert all(torch.allclose(new[k], old[k], atol=0.1) for k in new), shipped.name
        assert all(torch.equal(a, b) for a, b in zip(_outputs(made, script), _outputs(shipped, script))), shipped.name


def test_a_rebuild_replaces_only_the_files_the_scripts_write(tmp_path):
    """The scripts' --out may be any folder: a rebuild removes what an earlier rebuild wrote there, and leaves
    every other file alone (it used to remove every file in the folder)."""
    script = _script()  # make_task_models, which saves through make_sample_model.save

    class Saved:  # a model or tokenizer that writes one of the files save_pretrained writes
        def __init__(self, name):
            self.name = name

        def save_pretrained(self, folder):
            (Path(folder) / self.name).write_text("new")

    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "vocab.txt").write_text("stale")  # written by an earlier rebuild, not written this time
    script.save(tmp_path, Saved("config.json"), Saved("tokenizer.json"))
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "vocab.txt").exists()
    assert (tmp_path / "config.json").read_text() == "new" and (tmp_path / "tokenizer.json").read_text() == "new"
