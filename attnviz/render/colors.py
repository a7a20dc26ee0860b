"""Colour maps as plain numbers, for writers that colour HTML themselves (the report's canvas, attribution
token backgrounds) and must match the figures drawn here."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=8)
def ramp(name: str, n: int = 256) -> np.ndarray:
    """(n, 3) float64 RGB in [0, 1]: the matplotlib colour map ``name`` sampled evenly from 0 to 1."""
    from matplotlib import colormaps

    out = colormaps[name](np.linspace(0.0, 1.0, n))[:, :3]
    out.flags.writeable = False  # shared by the cache
    return out


def ramp_hex(name: str) -> str:
    """256 RGB triples of ``name`` as one hex string (6 digits per entry), rounded to bytes."""
    return (ramp(name) * 255).round().astype(np.uint8).tobytes().hex()


def colour_hex(name: str, value: float) -> str:
    """'#rrggbb' of ``name`` at ``value`` in [0, 1] (clipped), as matplotlib colours that value."""
    from matplotlib import colormaps

    r, g, b, _ = colormaps[name](value)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"
