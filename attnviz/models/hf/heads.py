"""Which head of a Hugging Face model attnviz loads: the Auto class its architecture names and the task that
explains it; a head attnviz does not explain is said in a note, and models that read audio are refused
before their weights load."""

from __future__ import annotations

import json
import re
from pathlib import Path

from attnviz.errors import BadInput
from attnviz.models.hf.hub import _short

# Suffix of the architecture name -> (Auto class name, kind-independent task)
TASKS = [
    ("ForSequenceClassification", "AutoModelForSequenceClassification", "classification"),
    ("ForTokenClassification", "AutoModelForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "AutoModelForQuestionAnswering", "question-answering"),
    ("ForImageClassification", "AutoModelForImageClassification", "image-classification"),
    ("ForImageClassificationWithTeacher", "AutoModelForImageClassification", "image-classification"),
    ("ForMaskedLM", "AutoModelForMaskedLM", "masked-lm"),
    ("ForCausalLM", "AutoModelForCausalLM", "causal-lm"),
    ("LMHeadModel", "AutoModelForCausalLM", "causal-lm"),
    ("ForConditionalGeneration", "AutoModelForSeq2SeqLM", "seq2seq"),
]
# Heads that read one text per input and whose outputs sit on the encoder's tokens: an encoder-decoder
# variant (BART's) would run a decoder that attnviz does not show for them.
ENCODER_ONLY = ("token-classification", "question-answering")
# What a head that attnviz does not explain computes, for the note that says so.
WHY = {"ForMultipleChoice": "it scores each of several choices, inputs shaped (choices, tokens)",
       "DoubleHeadsModel": "a language model and a multiple-choice head"}

# Config fields that only models reading audio carry (log-mel bins, the waveform feature encoder's
# normalisation and convolutional position embedding, filterbank features per frame, the speech encoder's
# input width, audio channels), and the names of sub-configs that hold an audio or speech tower. A model with
# a vision tower as well (Gemma 3n, Phi-4 multimodal, the omni models) reads text and images too: not refused.
AUDIO_FIELDS = ("num_mel_bins", "feat_extract_norm", "num_conv_pos_embeddings", "input_feat_per_channel",
                "feature_projection_input_dim", "audio_channels")
AUDIO_PARTS = ("audio_config", "speech_config", "codec_config", "audio_encoder")
AUDIO_HEADS = re.compile(r"ForCTC$|ForAudio|ForSpeech|ForXVector|SpeechSeq2Seq")


def auto_class(config):
    """(transformers Auto class, task) for a config: the head its architecture names, else the bare model."""
    import transformers

    arch = _arch(config)
    for suffix, auto_name, task in TASKS:
        if arch.endswith(suffix):
            if task in ENCODER_ONLY and getattr(config, "is_encoder_decoder", False):
                raise BadInput(f"{arch} puts a {_words(suffix)} head on an encoder-decoder; attnviz explains that "
                               "head on encoder models (BERT, RoBERTa, DistilBERT, ...)")
            return getattr(transformers, auto_name), task
    if getattr(config, "is_encoder_decoder", False):
        return transformers.AutoModelForSeq2SeqLM, "seq2seq"
    if arch.startswith("CLIP"):
        return transformers.AutoModel, "clip"
    return transformers.AutoModel, "embedding"


def unsupported_head(config, loaded_as: str, kind: str, task: str) -> str | None:
    """A one-line note when the architecture names a head that attnviz does not load (``loaded_as``: the class
    loaded instead, a ``kind`` model with ``task``), saying what is shown instead; None when there is no such head."""
    arch = _arch(config)
    found = re.search(r"(For[A-Z]\w*|DoubleHeadsModel)$", arch)
    if not found or any(arch.endswith(suffix) for suffix, _, _ in TASKS) or arch == loaded_as:
        return None
    suffix = found.group(1)
    head = f"its {_words(suffix)} head" + (f" ({WHY[suffix]})" if suffix in WHY else "")
    if task != "embedding":
        return f"{arch}: attnviz does not support {head}; loaded {loaded_as} instead and explains it as {task}"
    explained = ("`attnviz cam` explains its image embedding" if kind == "vision" else
                 '`attnviz attribute` explains its sentence embedding (--reference "TEXT")')
    return (f"{arch}: attnviz does not support {head}; loaded it without the head, as {loaded_as}: its attention "
            f"is shown, and {explained}, not the head's scores")


def refuse_audio(config, folder, spec: str) -> None:
    """BadInput, before any weights load, for a model that reads audio (speech recognition, audio
    classification, speech translation, audio-text towers): attnviz explains text and image models."""
    why = audio_evidence(config, folder)
    if why:
        what = _arch(config) or getattr(config, "model_type", "") or "this model"
        raise BadInput(f"{_short(spec)} is a speech or audio model that reads (or makes) audio ({what}: {why}); "
                       "attnviz explains text and image models: audio input (feature extractors, audio frames, "
                       "text decoded over them) is not supported")


def audio_evidence(config, folder) -> str | None:
    """What marks ``config`` (or the folder's feature extractor) as a model that reads audio, or None."""
    for part in (config, getattr(config, "encoder", None), getattr(config, "encoder_config", None)):
        for name in AUDIO_FIELDS:
            if getattr(part, name, None) is not None:
                return f"its config has {name}"
    for name in AUDIO_PARTS if getattr(config, "vision_config", None) is None else ():
        if getattr(config, name, None) is not None:
            return f"its config has an {name}" if name[0] in "aeiou" else f"its config has a {name}"
    if AUDIO_HEADS.search(_arch(config)):
        return "an audio head"
    rate = _preprocessor(folder).get("sampling_rate")
    return f"its feature extractor reads sound sampled at {rate} Hz" if rate else None


def _preprocessor(folder) -> dict:
    """The folder's preprocessor_config.json (an image processor's or an audio feature extractor's), or {}."""
    try:
        data = json.loads((Path(folder) / "preprocessor_config.json").read_text(encoding="utf-8"))
    except (OSError, TypeError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _arch(config) -> str:
    archs = getattr(config, "architectures", None) or [""]
    return archs[0] if isinstance(archs[0], str) else ""


def _words(suffix: str) -> str:
    """'ForMultipleChoice' -> 'multiple-choice'."""
    if suffix == "DoubleHeadsModel":
        return "double"
    name = suffix[3:] if suffix.startswith("For") else suffix
    return "-".join(w.lower() for w in re.findall(r"[A-Z][a-z0-9]*", name))
