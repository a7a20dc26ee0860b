"""Numeric snapshots of attention (and attribution) that a CI job checks for drift.

``record`` writes one baseline per input and ``manifest.json``; ``check`` recomputes and compares them
(a ``CheckResult``: exit 1 on drift); ``update`` rewrites them from the model at hand. Inside: ``store``
(the files), ``manifest`` (its settings and context, checked when read), ``compare`` (tolerances and
metrics), ``result`` (the verdict and its wording), ``run`` (the three functions), ``ci`` (JUnit,
Markdown) and ``html`` (diff.html). The CLI's ``snapshot`` commands and the pytest plugin both use this
package; nothing here prints. Imported lazily: ``import attnviz.snapshot`` loads no torch.
"""

from __future__ import annotations

__all__ = ["CheckResult", "SnapshotSettings", "Tolerance", "check", "record", "recorded_model", "update"]

_LAZY = {
    "CheckResult": "attnviz.snapshot.result",
    "SnapshotSettings": "attnviz.snapshot.manifest",
    "Tolerance": "attnviz.snapshot.compare",
    "check": "attnviz.snapshot.run",
    "record": "attnviz.snapshot.run",
    "recorded_model": "attnviz.snapshot.manifest",
    "update": "attnviz.snapshot.run",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'attnviz.snapshot' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)
