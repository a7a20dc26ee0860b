"""Shared fixtures: the real MiniLM model is loaded once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def minilm():
    from attnviz.models import load_model

    return load_model("minilm", device="cpu")
