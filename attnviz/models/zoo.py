"""The built-in toys: name -> a function that builds a LoadedModel."""

from __future__ import annotations

from typing import Callable

from attnviz.registry import Registry

ZOO: Registry[Callable] = Registry("built-in model")
