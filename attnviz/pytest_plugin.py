"""pytest plugin: the ``attn_snapshot`` fixture and the ``--attnviz-update`` option.

Registered through the ``pytest11`` entry point, so it loads in every pytest run of an environment
where attnviz is installed: it imports nothing heavy until a test asks for the fixture.

    def test_attention_is_stable(attn_snapshot):
        attn_snapshot.check("minilm", ["The movie was not good."])

Baselines live next to the test file, in ``__attnviz_snapshots__/<module>/<test>/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

FOLDER = "__attnviz_snapshots__"
UPDATE = "--attnviz-update"


def pytest_addoption(parser):
    group = parser.getgroup("attnviz")
    group.addoption(UPDATE, action="store_true", default=False,
                    help="rewrite the attnviz snapshot baselines of the tests that run, instead of checking them")


class AttnSnapshot:
    """What a test gets: ``check(model, inputs)`` records (with --attnviz-update) or compares."""

    def __init__(self, folder: Path, update: bool):
        self.folder = folder  # this test's baselines; a second check in one test adds a suffix
        self.update = update
        self.calls = 0
        self.last = None  # the last CheckResult (None after an update)

    def check(self, model, inputs, *, name: str | None = None, methods=(), store_dtype: str = "float32",
              layers=None, heads=None, **tolerances):
        """Compare ``model``'s attention on ``inputs`` with the stored baselines; fail the test on drift.

        ``model``: a LoadedModel or a spec for ``attnviz.load_model``. Capture settings apply when the
        baselines are recorded; a check reuses the recorded ones. Tolerances as in
        ``attnviz.snapshot.Tolerance`` (max_abs=..., jsd=...) override the stored dtype's defaults.
        """
        from attnviz.errors import AttnvizError
        from attnviz.snapshot import SnapshotSettings, check, record

        self.calls += 1
        folder = self.folder / _safe(name) if name else self.folder
        if not name and self.calls > 1:
            folder = self.folder.with_name(f"{self.folder.name}-{self.calls}")
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        if not self.update and not folder.is_dir():
            pytest.fail(f"attnviz snapshot: no baselines for this check in {folder}; "
                        f"record them with: pytest {UPDATE}", pytrace=False)
        problem = None
        try:
            loaded = _load(model)
            if self.update:
                settings = SnapshotSettings(layers, heads, store_dtype, methods)
                record(loaded, texts, folder, settings, update=True)
                self.last = None
                return None
            self.last = check(loaded, texts, folder, overrides=tolerances, regenerate=f"pytest {UPDATE}")
        except AttnvizError as err:
            problem = f"attnviz snapshot: {err}"
        if problem:  # outside the except block, so the report shows no chained traceback
            pytest.fail(problem, pytrace=False)
        if not self.last.ok:
            pytest.fail(_describe(self.last, folder), pytrace=False)
        return self.last


def _load(model):
    if isinstance(model, str):
        from attnviz.models import load_model

        return load_model(model, device="cpu")
    return model


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "snapshot"


def _describe(result, folder: Path) -> str:
    from attnviz.snapshot.ci import render_markdown

    return (f"attnviz snapshot drift against {folder}\n{render_markdown(result)}"
            f"If the change is intended, rewrite the baselines with: pytest {UPDATE}")


@pytest.fixture
def attn_snapshot(request) -> AttnSnapshot:
    path = Path(str(request.node.path))
    test = _safe(request.node.name)
    folder = path.parent / FOLDER / path.stem / test
    return AttnSnapshot(folder, bool(request.config.getoption(UPDATE)))
