"""``[tool.attnviz]`` of the nearest pyproject.toml: read, shaped and type-checked before any command runs.

A value of the wrong type (``tool = 5``, ``max-abs = "abc"``, a table where a value belongs) is one line
and exit 2 for every command, ``--help`` included, never a traceback from deep inside the option parser.
"""

from __future__ import annotations

import inspect
import types
import typing
from pathlib import Path

from attnviz.errors import BadInput

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

SCALARS = (str, int, float, bool)  # what an option's value may be in TOML (dates and tables are not)


def read_table(start: Path | None = None) -> tuple[Path | None, dict]:
    """(the pyproject.toml found, its ``[tool.attnviz]`` table); (None, {}) when there is none."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        path = folder / "pyproject.toml"
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except OSError:
                return None, {}
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
                raise BadInput(f"{path} is not valid TOML: {err}") from None
            except RecursionError:  # tomllib recurses once per nested array or table
                raise BadInput(f"{path} is nested too deeply to read") from None
            tool = data.get("tool", {})
            if not isinstance(tool, dict):
                raise BadInput(f"{path}: tool must be a table, not {_kind(tool)}")
            table = tool.get("attnviz", {})
            if not isinstance(table, dict):
                raise BadInput(f"{path}: [tool.attnviz] must be a table, not {_kind(table)}")
            return path, table
    return None, {}


def split(table: dict, path: Path | None) -> dict:
    """``{"shared": {...}, "<command>": {...}}`` with option names spelt with ``_``; a value nested deeper than
    ``[tool.attnviz.<command>] option = value`` (or a list of values) is refused."""
    shared = {k.replace("-", "_"): v for k, v in table.items() if not isinstance(v, dict)}
    per_command = {k: {o.replace("-", "_"): v for o, v in sub.items()} for k, sub in table.items() if isinstance(sub, dict)}
    for section, values in [("", shared), *((f".{k}", v) for k, v in per_command.items())]:
        for key, value in values.items():
            bad = [v for v in (value if isinstance(value, list) else [value]) if not isinstance(v, SCALARS)]
            if bad:
                raise BadInput(f"{path or 'pyproject.toml'}: [tool.attnviz{section}] {key.replace('_', '-')} must be "
                               f"a text, a number, true/false or a list of them, not {_kind(bad[0])}")
    return {"shared": shared, **per_command}


def option_types(fn, flags: bool = False) -> dict[str, object]:
    """Parameter name (with ``flags``, also each ``--long-flag`` spelt with ``_``) -> the Python type a command
    declares for it."""
    found = {}
    for param in inspect.signature(fn, eval_str=True).parameters.values():
        hint, meta = param.annotation, ()
        if typing.get_origin(hint) is typing.Annotated:
            hint, *meta = typing.get_args(hint)
        decls = [d for m in meta for d in getattr(m, "param_decls", None) or () if d.startswith("--")]
        for name in (param.name, *(f[2:].replace("-", "_") for f in decls if flags)):
            found[name] = _unwrap(hint)
    return found


def check_values(section: str, values: dict, types_: dict[str, object], path: Path | None) -> None:
    """Each value in ``values`` has the type its option declares (keys no option takes are left to the caller)."""
    for key, value in values.items():
        want = types_.get(key)
        if want is not None and not _fits(value, want):
            raise BadInput(f"{path or 'pyproject.toml'}: [tool.attnviz{section}] {key.replace('_', '-')} = "
                           f"{_show(value)} must be {_describe(want)}")


def _unwrap(hint):
    """Optional[X] -> X; list[X] stays list[X]."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return hint


def _fits(value, want) -> bool:
    if typing.get_origin(want) is list:
        (inner,) = typing.get_args(want) or (str,)
        return isinstance(value, list) and all(_fits(v, inner) for v in value)
    if want is bool:
        return isinstance(value, bool)
    if isinstance(value, bool) or isinstance(value, list):
        return False
    if want is int:
        return isinstance(value, int)
    if want is float:
        return isinstance(value, (int, float))
    return isinstance(value, (str, int, float))  # a text option (or path) takes numbers as their text


def _describe(want) -> str:
    if typing.get_origin(want) is list:
        return "a list of texts"
    return {bool: "true or false", int: "a whole number", float: "a number"}.get(want, "a text")


def _kind(value) -> str:
    return {dict: "a table", list: "a list"}.get(type(value), f"{type(value).__name__} {_show(value)}")


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
