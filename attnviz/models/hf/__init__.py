"""Hugging Face models (the only place besides ``attention/hf.py`` that imports transformers): where they come
from and whether they are safe (``hub``), and how they load into a LoadedModel (``load``)."""

from attnviz.models.hf.hub import hub_settings, read_config, resolve
from attnviz.models.hf.load import load_hf, read_shape

__all__ = ["hub_settings", "load_hf", "read_config", "read_shape", "resolve"]
