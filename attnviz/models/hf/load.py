"""Loading a Hugging Face model into a LoadedModel: the Auto class its architecture names, device placement,
dtype, the tokenizer or image processor, and the facts attnviz needs (layers, heads, labels, padding)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from attnviz.errors import BadInput, ModelNotFound
from attnviz.models.loaded import LoadedModel
from attnviz.models.hf.heads import auto_class, refuse_audio, unsupported_head
from attnviz.models.hf.hub import _check_safety, _one_line, _short, hub_settings, resolve
from attnviz.models.heads import HeadlessModel, PairedModel


def _kind(config, task: str) -> str:
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder"
    if task in ("image-classification", "clip") or getattr(config, "model_type", "") in ("vit", "deit", "clip_vision_model"):
        return "vision"
    return "decoder" if task == "causal-lm" or getattr(config, "is_decoder", False) else "encoder"


def load_hf(spec: str, *, device, dtype, online=False, allow_pickle=False, trust_remote_code=False, revision=None,
            placed=None) -> LoadedModel:
    """A folder or hub id -> LoadedModel on ``device`` (or placed by accelerate: ``placed``, a checked
    ``models.placement.Placement``), attention backend chosen."""
    with hub_settings(online):
        folder = resolve(spec, online, revision)
        if folder == "":
            raise ModelNotFound(f"model {_short(spec)!r} is neither built in, nor a folder, nor in the local Hugging Face cache")
        _check_safety(folder, allow_pickle, trust_remote_code, revision)
        from attnviz.attention.hf import preflight

        common = {"revision": revision, "trust_remote_code": trust_remote_code, "local_files_only": not online}
        config, model, task = _from_pretrained(spec, folder, dtype, allow_pickle, placed, common)
        if placed is None or not placed.spread:  # with a device map, accelerate has placed the layers already
            model.to(device)
        model.eval()
        loaded = _wrap(spec, model, config, task, folder, common)
        loaded.backend = preflight(loaded.forward_module, lambda: loaded.forward_module(**loaded.probe_batch()))
    return loaded


def _from_pretrained(spec, folder, dtype, allow_pickle, placed, common):
    """(config, model, task) with the attnviz kernel as the attention implementation."""
    from transformers import AutoConfig

    from attnviz.attention.hf import register

    placement = _placement_kwargs(placed)
    try:
        config = AutoConfig.from_pretrained(str(folder), **common)
        refuse_audio(config, folder, spec)  # before any weights load
        auto, task = auto_class(config)
        with _quiet_accelerate():
            model = auto.from_pretrained(
                str(folder), attn_implementation=register(), use_safetensors=None if allow_pickle else True,
                dtype=dtype, **placement, **common,
            )
    except Exception as err:  # transformers and safetensors raise many types for a broken folder
        _remove(placement.get("offload_folder"))
        if isinstance(err, (MemoryError, BadInput)):
            raise
        raise ModelNotFound(f"cannot load {_short(spec)}: {type(err).__name__}: {_one_line(err)}") from None
    if placement.get("offload_folder"):  # the offloaded weights live as long as the model
        import weakref

        weakref.finalize(model, _remove, placement["offload_folder"])
    return config, model, task


@contextmanager
def _quiet_accelerate() -> Iterator[None]:
    """accelerate warns that offloaded parameters sit on the meta device: that is what offloading means."""
    import logging

    log = logging.getLogger("accelerate")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _remove(folder: str | None) -> None:
    if folder:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def _placement_kwargs(placed) -> dict:
    """from_pretrained's placement arguments; nothing at all without a device map (accelerate stays unimported)."""
    if placed is None or not placed.spread:
        return {}
    import tempfile

    # Layers mapped to "disk" whose weights are not already in a safetensors file are written here for the run.
    kwargs = {"device_map": placed.device_map, "offload_folder": tempfile.mkdtemp(prefix="attnviz-offload-")}
    if placed.max_memory is not None:
        kwargs["max_memory"] = placed.max_memory
    if placed.quantization is not None:
        from transformers import BitsAndBytesConfig

        bits = {"8bit": {"load_in_8bit": True}, "4bit": {"load_in_4bit": True}}[placed.quantization]
        kwargs["quantization_config"] = BitsAndBytesConfig(**bits)
    return kwargs


def read_shape(spec: str, revision: str | None = None) -> tuple[int, int] | None:
    """(layers, heads per layer) of a folder or cached hub id from its config alone, without building the
    model; None when the config cannot tell (load_hf then reports whatever is wrong)."""
    with hub_settings(online=False):
        try:
            folder = resolve(spec, False, revision)
            if folder == "":
                return None
            from transformers import AutoConfig

            # never remote code: a config class from the model's own files is not worth running code for
            config = AutoConfig.from_pretrained(str(folder), revision=revision, local_files_only=True,
                                                trust_remote_code=False)
            _, task = auto_class(config)
            return _shape(config, _kind(config, task))
        except Exception:  # remote code, a broken folder, ...: not for a shape check to report
            return None


def _shape(config, kind: str) -> tuple[int, int]:
    """(layers, heads per layer) as a loaded model reports them."""
    cfg = _side(config, kind)
    layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "num_layers", None) or getattr(cfg, "n_layer", 0)
    heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "num_heads", None) or getattr(cfg, "n_head", 0)
    heads = heads[0] if isinstance(heads, (list, tuple)) else heads  # Swin: heads per stage
    return int(layers), int(heads)


def _side(config, kind: str):
    """The config of the tower that runs the inputs: a vision model's vision side, else the text side."""
    return getattr(config, "vision_config" if kind == "vision" else "text_config", None) or config


def _wrap(spec, model, config, task, folder, common) -> LoadedModel:
    kind = _kind(config, task)
    tokenizer = processor = None
    try:
        if kind == "vision":
            from transformers import AutoImageProcessor

            processor = AutoImageProcessor.from_pretrained(str(folder), **common)
            if getattr(config, "text_config", None) is not None:  # a full CLIP model also reads text prompts
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(str(folder), **common)
        else:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(folder), **common)
    except (OSError, ValueError) as err:
        what = "image processor" if kind == "vision" else "tokenizer"
        raise ModelNotFound(f"cannot load the {what} of {spec}: {_one_line(err)}") from None
    if tokenizer is not None and len(tokenizer) <= len(set(tokenizer.all_special_ids)):
        # transformers builds an empty tokenizer when the files are missing: every word would be [UNK]
        raise ModelNotFound(f"the tokenizer of {spec} has no vocabulary; are its tokenizer files missing?")
    padding = _padding(tokenizer, kind) if tokenizer is not None else None
    cfg = _side(config, kind)
    layers, heads = _shape(config, kind)
    if layers < 1 or heads < 1:
        raise ModelNotFound(f"{_short(spec)} has {layers} layers of {heads} heads; its config names no attention to show")
    labels = [config.id2label[i] for i in sorted(config.id2label)] if task.endswith("classification") else []
    if not all(isinstance(label, str) for label in labels):
        raise ModelNotFound(f"the id2label of {_short(spec)} must map class numbers to names (texts)")
    max_len = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 512
    if tokenizer is not None and 0 < getattr(tokenizer, "model_max_length", 0) < max_len:
        max_len = tokenizer.model_max_length
    meta = {
        "decoder_start": getattr(config, "decoder_start_token_id", None) or getattr(config, "bos_token_id", 0) or 0,
        "eos": getattr(config, "eos_token_id", None), "pad": getattr(config, "pad_token_id", 0) or 0,
    }
    if padding:
        meta["padding"] = padding
    note = unsupported_head(config, type(model).__name__, kind, task)
    if note:  # e.g. a multiple-choice head: the encoder alone is shown, and said so
        meta["head"] = meta["description"] = note
    if isinstance(getattr(cfg, "depths", None), (list, tuple)):  # Swin and its kin: stages of windowed attention
        meta["windowed"] = (
            f"{type(model).__name__} computes attention inside local windows of {getattr(cfg, 'window_size', '?')} x "
            f"{getattr(cfg, 'window_size', '?')} patches, in stages that merge patches, never over the whole image: "
            "there is no one attention map per layer to show; use a ViT, DeiT or CLIP model")
    record = PairedModel if task == "question-answering" else HeadlessModel if note else LoadedModel
    return record(
        model=model, name=spec, kind=kind, task=task, num_layers=layers, num_heads=heads, backend="attnviz",
        tokenizer=tokenizer, processor=processor, labels=labels, max_length=int(max_len),
        source=str(folder), architecture=type(model).__name__, meta=meta,
        multi_label=bool(labels) and getattr(config, "problem_type", None) == "multi_label_classification",
    )


def _padding(tokenizer, kind: str) -> str:
    """How a batch is padded, for `attnviz info`. GPT-2's and Llama's tokenizers ship without a pad token: they pad
    with their end token, and a decoder-only model on the left, so that every text ends at the last position (the
    kernel masks the padding, and ``encode`` gives positions that follow the mask)."""
    if tokenizer.pad_token is not None:
        return f"{tokenizer.padding_side}, with {tokenizer.pad_token}"
    filler = tokenizer.eos_token or tokenizer.bos_token or tokenizer.unk_token
    if filler is None:
        return "none: the tokenizer has no pad, end or unknown token (give one text at a time)"
    tokenizer.pad_token = filler
    if kind == "decoder":
        tokenizer.padding_side = "left"
    return f"{tokenizer.padding_side}, with {filler} (the tokenizer has no pad token)"
