"""The import directions of DESIGN.md section 1, read from the source with ast (nothing is imported)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "attnviz"
CONTRACT = {"attnviz.maps", "attnviz.images", "attnviz.errors", "attnviz.registry", "attnviz.io", "attnviz.stats"}
# Every module of the package has a layer (DESIGN.md section 1); a module imports only its own layer's or
# lower layers' modules. The package's own __init__ imports lazily and stands apart.
LAYERS = {"attnviz.maps": 0, "attnviz.stats": 0, "attnviz.errors": 0, "attnviz.registry": 0, "attnviz.images": 0, "attnviz.io": 0,
          "attnviz.attention": 1, "attnviz.recording": 2, "attnviz.models": 2, "attnviz.attribution": 3,
          "attnviz.render": 4, "attnviz.report": 4, "attnviz.snapshot": 4, "attnviz.notebook": 4,
          "attnviz.cli": 5, "attnviz.__main__": 5, "attnviz.pytest_plugin": 5}
# Where each outside library may be imported.
LIBRARIES = {"transformers": ("attnviz.models.hf", "attnviz.attention.hf"),
             "huggingface_hub": ("attnviz.models.hf", "attnviz.attention.hf"),
             "accelerate": ("attnviz.models.hf",), "ray": ("attnviz.report.engines",),
             "fsspec": ("attnviz.report.outdir",),
             "typer": ("attnviz.cli",), "rich": ("attnviz.cli",), "matplotlib": ("attnviz.render",)}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _names(node: ast.AST, module: str, is_package: bool) -> set[str]:
    """Fully qualified names one import statement brings in; relative imports resolved."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:
        anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
        base = ".".join(anchor + ([base] if base else []))
    return {base} | {f"{base}.{alias.name}" for alias in node.names}


@lru_cache(maxsize=1)
def imports() -> dict[str, set[str]]:
    """Module name -> every name it imports, at top level or inside functions."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names |= _names(node, module, path.name == "__init__.py")
        found[module] = names
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _users(prefix: str) -> set[str]:
    return {m for m, names in imports().items() if any(_under(n, prefix) for n in names)}


def test_the_parser_sees_the_package():
    found = imports()
    assert {"attnviz", "attnviz.recording", "attnviz.models.hf", "attnviz.attention.kernel"} <= set(found)
    assert "attnviz.attention.kernel" in found["attnviz.recording.sinks"]


def test_every_module_has_a_layer():
    assert {m for m in imports() if m != "attnviz" and _layer(m) is None} == set()


def test_outside_libraries_only_where_design_allows_and_never_pyplot():
    for lib, allowed in LIBRARIES.items():
        assert {m for m in _users(lib) if not any(_under(m, a) for a in allowed)} == set(), lib
    assert _users("matplotlib.pyplot") == set() and _users("pylab") == set()


def test_capture_and_models_do_not_import_each_other():
    assert {m for m in _users("attnviz.models") if _under(m, "attnviz.recording")} == set()
    assert {m for m in _users("attnviz.recording") if _under(m, "attnviz.models")} == set()


def test_render_and_snapshot_storage_import_only_the_data_contract():
    """render is pure (data in, figures or bytes out); snapshot's store and compare run no model."""
    for module, names in imports().items():
        pure = _under(module, "attnviz.render") or module in ("attnviz.snapshot.store", "attnviz.snapshot.compare")
        if not pure:
            continue
        own = "attnviz.render" if _under(module, "attnviz.render") else "attnviz.snapshot"
        ours = {n for n in names if _under(n, "attnviz") and n != "attnviz"}
        foreign = {n for n in ours if not _under(n, own) and not any(_under(n, c) for c in CONTRACT)}
        assert foreign == set(), module


def test_report_and_snapshot_do_not_import_each_other():
    """Writers sit side by side above attribution; only the CLI and the pytest plugin combine them (the notebook
    views may read the report's inline assets, DESIGN.md section 1)."""
    peers = ("attnviz.report", "attnviz.snapshot")
    for module, names in imports().items():
        own = next((p for p in peers if _under(module, p)), None)
        if own is None:
            continue
        assert {n for n in names if any(_under(n, p) for p in peers if p != own)} == set(), module


def _layer(name: str) -> int | None:
    return next((rank for prefix, rank in LAYERS.items() if _under(name, prefix)), None)


def test_lower_layers_never_import_higher_ones():
    for module, names in imports().items():
        rank = _layer(module)
        if rank is None:
            continue
        upward = {n for n in names if (_layer(n) or 0) > rank}
        assert upward == set(), module


def test_import_attnviz_loads_nothing_heavy():
    heavy = ["matplotlib", "transformers", "huggingface_hub", "typer", "rich"]
    code = (
        "import json, sys; import attnviz, attnviz.maps, attnviz.recording; "
        f"print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_the_public_names_resolve():
    import attnviz

    results = {"AttentionMaps", "Attribution", "CamResult", "LoadedModel", "Target", "GeneratedAttribution"}
    functions = {"load_model", "capture", "attribute", "attribute_many", "explain", "cam", "attribute_generation"}
    assert results | functions <= set(attnviz.__all__)
    for name in attnviz.__all__:
        assert getattr(attnviz, name) is not None, name
        if name != "__version__":
            assert (getattr(attnviz, name).__doc__ or "").strip(), name
    lists = {"GeneratedAttribution", "attribute_generation"}  # per-prompt lists of steps, not batched tensors
    for name in sorted((results | functions) - {"load_model"} - lists):
        doc = getattr(attnviz, name).__doc__
        assert not doc.startswith(f"{name}(") and "(B" in doc, name  # written, not generated; with shapes
