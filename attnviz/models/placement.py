"""Where a big model's layers go: accelerate's device maps and memory limits, quantised loading, and where each
attention layer sits after loading.

Checked once, at the library entry (``load_model``), so that a bad ``--device-map`` or ``--device-max-memory`` is
one line and exit 2 before anything is read from disk. accelerate itself is imported only by transformers, when
``from_pretrained`` gets a device map.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import torch

from attnviz.errors import BadInput

STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
LOAD_IN = ("8bit", "4bit")
_DEVICE = re.compile(r"^(cpu|disk|mps|cuda(:\d+)?|\d+)$")
_SIZE = re.compile(r"^\d+(\.\d+)?\s*([KMGT]i?B|B)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Placement:
    """What ``from_pretrained`` gets to place a model: ``device_map`` (a strategy name or module -> device),
    ``max_memory`` (device -> size), ``quantization`` (None, "8bit" or "4bit")."""

    device_map: str | dict | None = None
    max_memory: dict | None = None
    quantization: str | None = None

    @property
    def spread(self) -> bool:
        """Whether accelerate places the layers (then ``device`` does not move the model)."""
        return self.device_map is not None


def parse_device_map(value: str | dict | None) -> str | dict | None:
    """auto, balanced, balanced_low_0, sequential, one device (cpu, cuda:0, ...) or a JSON object mapping module
    names to devices ("cpu", "disk", "cuda:1" or a GPU number) -> what ``from_pretrained`` takes."""
    if value is None or isinstance(value, dict):
        return _checked_map(value) if isinstance(value, dict) else None
    text = str(value).strip()
    if text.startswith("{"):
        try:
            return _checked_map(json.loads(text))
        except json.JSONDecodeError as err:
            raise BadInput(f"--device-map is not valid JSON: {err.msg} at character {err.pos}") from None
    if text in STRATEGIES or _DEVICE.match(text):
        return int(text) if text.isdigit() else text
    raise BadInput(f"--device-map must be {', '.join(STRATEGIES)}, a device or a JSON object "
                   f"(module name -> device), not {text!r}")


def _checked_map(mapping) -> dict:
    if not isinstance(mapping, dict) or not mapping:
        raise BadInput("--device-map JSON must be an object mapping module names to devices, e.g. "
                       '{"model.layers.0": "cpu", "model.layers.1": "disk"}')
    for name, device in mapping.items():
        if not (isinstance(device, int) and not isinstance(device, bool)) and not (
                isinstance(device, str) and _DEVICE.match(device)):
            raise BadInput(f"--device-map puts {name!r} on {device!r}; a device is cpu, disk, mps, cuda:N or N")
    return {name: int(d) if isinstance(d, str) and d.isdigit() else d for name, d in mapping.items()}


def parse_max_memory(value: str | dict | None) -> dict | None:
    """accelerate's per-device limits: a JSON object like {"cpu": "2GiB", "0": "20GiB"} (or a dict) ->
    {"cpu": "2GiB", 0: "20GiB"}; GPU numbers become ints, as accelerate wants them."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise BadInput(f"--device-max-memory is not valid JSON: {err.msg} at character {err.pos}") from None
    if not isinstance(value, dict) or not value:
        raise BadInput('--device-max-memory must be a JSON object of device -> size, e.g. {"cpu": "2GiB"}')
    out = {}
    for device, size in value.items():
        device = str(device)
        if not _DEVICE.match(device) or device == "disk":
            raise BadInput(f"--device-max-memory names {device!r}; a device is cpu, mps, cuda:N or a GPU number N")
        if not (isinstance(size, int) and not isinstance(size, bool) and size > 0) and not (
                isinstance(size, str) and _SIZE.match(size.strip())):
            raise BadInput(f"--device-max-memory gives {device} {size!r}; a size is bytes or e.g. 800MiB, 2GiB")
        out[int(device) if device.isdigit() else device] = size
    return out


def placement(device_map=None, max_memory=None, load_in: str | None = None) -> Placement:
    """The checked placement of one load; quantised loading needs CUDA and bitsandbytes, and is placed by
    accelerate ("auto" unless a map is given)."""
    device_map, max_memory = parse_device_map(device_map), parse_max_memory(max_memory)
    if max_memory is not None and device_map is None:
        raise BadInput("--device-max-memory limits what --device-map places; give --device-map auto (or another) too")
    if load_in is not None:
        if load_in not in LOAD_IN:
            raise BadInput(f"--load-in must be 8bit or 4bit, not {load_in!r}")
        if not torch.cuda.is_available():
            raise BadInput(f"--load-in {load_in} needs a CUDA GPU: bitsandbytes quantises weights on CUDA, and none "
                           "is available here; use --dtype bfloat16 or float16 to halve the memory instead")
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise BadInput(f"--load-in {load_in} needs the bitsandbytes package (pip install 'attnviz[quant]')")
        device_map = "auto" if device_map is None else device_map
    return Placement(device_map, max_memory, load_in)


def layer_devices(model: torch.nn.Module, part: torch.nn.Module | None = None) -> dict[str, dict[int, str]]:
    """stack -> layer -> where the attention of ``part`` (the module that runs the inputs, default ``model``) runs:
    accelerate's ``hf_device_map`` entry for the module (the longest name that is a prefix of its path), else the
    device of its parameters. Disk-offloaded layers read "disk"."""
    from attnviz.attention.sites import attention_sites

    part = model if part is None else part
    prefix = next((n for n, m in model.named_modules() if m is part), "")
    device_map = getattr(model, "hf_device_map", None) or {}
    out: dict[str, dict[int, str]] = {}
    for site in attention_sites(part):
        name = f"{prefix}.{site.name}" if prefix else site.name
        found = [k for k in device_map if k == "" or name == k or name.startswith(k + ".")]
        if found:
            where = device_map[max(found, key=len)]
            where = f"cuda:{where}" if isinstance(where, int) else str(where)
        else:
            where = str(next(site.module.parameters(), torch.empty(0)).device)
        out.setdefault(site.stack, {}).setdefault(site.layer, where)
    return out


def summary(layers: dict[int, str]) -> str:
    """{0: "cpu", 1: "cpu", 2: "disk"} -> "0-1 cpu, 2 disk": runs of consecutive layers on one device."""
    runs: list[list] = []
    for layer in sorted(layers):
        if runs and runs[-1][2] == layers[layer] and runs[-1][1] == layer - 1:
            runs[-1][1] = layer
        else:
            runs.append([layer, layer, layers[layer]])
    return ", ".join(f"{a}{'' if a == b else f'-{b}'} {where}" for a, b, where in runs)
