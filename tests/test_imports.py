"""The import directions of DESIGN.md section 1, read from the source with ast (nothing is imported)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "attnviz"
CONTRACT = {"attnviz.maps", "attnviz.images", "attnviz.errors", "attnviz.registry"}
# Lower layers never import higher ones (DESIGN.md section 1); render and snapshot are checked apart.
LAYERS = {"attnviz.maps": 0, "attnviz.errors": 0, "attnviz.registry": 0, "attnviz.images": 0,
          "attnviz.attention": 1, "attnviz.recording": 2, "attnviz.models": 2, "attnviz.attribution": 3,
          "attnviz.report": 4, "attnviz.cli": 5}


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
    assert "attnviz.attention.kernel" in found["attnviz.recording"]


def test_transformers_only_in_the_two_hf_modules():
    allowed = {"attnviz.models.hf", "attnviz.attention.hf"}
    for lib in ("transformers", "huggingface_hub"):
        assert _users(lib) <= allowed, lib


def test_typer_and_rich_only_in_cli():
    for lib in ("typer", "rich"):
        assert {m for m in _users(lib) if not _under(m, "attnviz.cli")} == set(), lib


def test_matplotlib_only_in_render_and_report_and_never_pyplot():
    outside = {m for m in _users("matplotlib") if not (_under(m, "attnviz.render") or _under(m, "attnviz.report"))}
    assert outside == set()
    assert _users("matplotlib.pyplot") == set() and _users("pylab") == set()


def test_capture_and_models_do_not_import_each_other():
    assert {m for m in _users("attnviz.models") if _under(m, "attnviz.recording")} == set()
    assert {m for m in _users("attnviz.recording") if _under(m, "attnviz.models")} == set()


def test_render_and_snapshot_import_only_the_data_contract():
    for module, names in imports().items():
        own = "attnviz.render" if _under(module, "attnviz.render") else "attnviz.snapshot"
        if not (_under(module, "attnviz.render") or module in ("attnviz.snapshot", "attnviz.snapshot_diff")):
            continue
        ours = {n for n in names if _under(n, "attnviz") and n != "attnviz"}
        foreign = {n for n in ours if not _under(n, own) and n != "attnviz.snapshot"
                   and not any(_under(n, c) for c in CONTRACT)}
        assert foreign == set(), module


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

    for name in attnviz.__all__:
        assert getattr(attnviz, name) is not None, name
