"""Read from a maps file only what one picture draws: one layer (and head) of the weights, as slices.

A maps file of a 6 x 12 model at 2,048 tokens holds 72 maps of 16 MiB each; the head view draws one of
them. safetensors reads a slice of a tensor without reading the rest (``safe_open(...).get_slice``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from attnviz.errors import BadInput
from attnviz.maps import AttentionMaps, contract_problem


def load_drawn(path: Path, drawn: tuple[int, int | None] | None, stack: str = "encoder") -> AttentionMaps:
    """The maps file at ``path`` with its weights cut to ``drawn`` = (layer, head or None) when the file holds
    one stack of full weights; everything otherwise (or when ``drawn`` is None)."""
    from safetensors import safe_open

    path = Path(path)
    if drawn is None or not path.is_file():
        return AttentionMaps.load(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta_json = (f.metadata() or {})["attnviz"]
            meta = json.loads(meta_json)
            if "weights" not in f.keys() or meta.get("kind") == "encoder-decoder":
                return AttentionMaps.load(path)
            bare = AttentionMaps.from_parts({"mask": f.get_tensor("mask")}, meta_json)
            part = f.get_slice("weights")
            shape = part.get_shape()
            numbers = all(type(v) is int for v in [*bare.layers, *bare.heads])
            if not numbers or len(shape) != 5 or shape[0] != len(bare.layers) or shape[2] != len(bare.heads):
                return AttentionMaps.load(path)  # a file that breaks the contract: refused there, with why
            li = bare.layer_index(drawn[0])
            hi = bare.head_index(drawn[1]) if drawn[1] is not None else None
            weights = part[li:li + 1] if hi is None else part[li:li + 1, :, hi:hi + 1]  # (1, B, 1|H, Q, K)
    except BadInput:
        raise
    except Exception as err:  # safetensors raises its own SafetensorError; JSON and fields fail too
        raise BadInput(f"{path} is not an attnviz maps file ({type(err).__name__})") from None
    maps = replace(bare, weights=weights, layers=[bare.layers[li]],
                   heads=bare.heads if hi is None else [bare.heads[hi]])
    problem = contract_problem(maps)
    if problem:
        raise BadInput(f"{path} is not a valid attnviz maps file: {problem}")
    return maps
