"""What every command shares: model options, error handling, inputs, config defaults."""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import signal
import sys
import threading
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

from attnviz.errors import AttnvizError, BadInput

# Messages carry file names, labels and tokens: brackets in them are text, never rich markup.
def _width(stream) -> int | None:
    """A terminal keeps its own width; piped or in CI (rich would assume 80 columns) tables are never cut:
    the width is $COLUMNS when set, else 200."""
    try:
        if stream.isatty():
            return None
    except (AttributeError, ValueError):
        pass
    return int(os.environ.get("COLUMNS") or 0) or 200


console = Console(highlight=False, markup=False, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, markup=False, width=_width(sys.stderr))


def labelled(label: str, style: str, message: object = "") -> Text:
    """``label`` in colour, then the message as plain text."""
    return Text.assemble((label, style), f" {message}" if message != "" else "")

Model = Annotated[str, typer.Option("--model", "-m", help="built-in name (see `attnviz models`), a model folder, or a cached hub id")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda or mps")]
Dtype = Annotated[Optional[str], typer.Option(help="float32, float16 or bfloat16 (default: the model's)")]
Online = Annotated[bool, typer.Option("--online", help="allow downloads from the model hub")]
AllowPickle = Annotated[bool, typer.Option("--allow-pickle", help="load pickle checkpoints (runs code from the file)")]
TrustRemote = Annotated[bool, typer.Option("--trust-remote-code", help="run the model's own code; needs --revision")]
Revision = Annotated[Optional[str], typer.Option(help="model revision (commit) to load")]
DeviceMap = Annotated[Optional[str], typer.Option(
    "--device-map", help="spread a Hugging Face model with accelerate: auto, balanced, sequential, or JSON "
                         "module -> device, e.g. '{\"model.layers.0\": \"cpu\", \"model.layers.1\": \"disk\"}'")]
DeviceMaxMemory = Annotated[Optional[str], typer.Option(
    "--device-max-memory", help="accelerate's limit per device, JSON, e.g. '{\"0\": \"20GiB\", \"cpu\": \"2GiB\"}' "
                                "(with --device-map)")]
LoadIn = Annotated[Optional[str], typer.Option("--load-in", help="8bit or 4bit: quantise with bitsandbytes (CUDA)")]


def guard(fn):
    """An AttnvizError becomes one red line and its exit code; nothing else escapes as a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with clean_warnings():
                return fn(*args, **kwargs)
        except AttnvizError as err:
            err_console.print(labelled("error:", "red", err), soft_wrap=True)
            raise typer.Exit(err.exit_code) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            ending()
            err_console.print(labelled("interrupted", "yellow"))
            raise typer.Exit(130) from None
        except Exception as err:  # an internal error still gets one line, not a traceback
            err_console.print(labelled("internal error:", "red", f"{type(err).__name__}: {err}"), soft_wrap=True)
            raise typer.Exit(5) from None

    return wrapper


@contextlib.contextmanager
def clean_warnings():
    """Python warnings (numpy's RuntimeWarning on NaN, Pillow's EXIF, matplotlib's layout) become one line each,
    once per message, without the source line that Python would print; the previous hook is restored."""
    seen: set[str] = set()

    def show(message, category, *_args, **_kwargs):
        text = " ".join(str(message).split())
        if text not in seen:
            seen.add(text)
            err_console.print(labelled("warning:", "yellow", text[:300]), soft_wrap=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


PROCESS = {"owned": False}  # set by main(): the command line runs as its own process, not inside a caller


def ending() -> None:
    """The command is ending after an interrupt: further Ctrl-C or SIGTERM must not break the exit that keeps
    the finished work (worker shutdown, atexit handlers), so a process of our own ignores them from here on."""
    if PROCESS["owned"] and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


OnLong = Annotated[str, typer.Option(help="truncate (with a note) or error when an input is too long")]


def names(text: str | None, registry=None) -> tuple[str, ...]:
    """'a, b,c' -> ('a', 'b', 'c'); with a registry, an unknown name is BadInput listing the known ones."""
    chosen = tuple(part.strip() for part in (text or "").split(",") if part.strip())
    for name in chosen if registry is not None else ():
        registry.get(name)
    return chosen


@dataclass(frozen=True)
class Loader:
    """How a command loads its model: the options that every model-loading command shares."""

    device: str = "auto"
    dtype: str | None = None
    online: bool = False
    allow_pickle: bool = False
    trust_remote_code: bool = False
    revision: str | None = None
    device_map: str | None = None
    device_max_memory: str | None = None  # accelerate's max_memory (--max-memory is a capture's budget)
    load_in: str | None = None

    def options(self):
        """The same options as the library's LoadOptions, for a command's config."""
        from attnviz.models import LoadOptions

        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["max_memory"] = values.pop("device_max_memory")
        return LoadOptions(**values)

    def load(self, model: str):
        return self.options().load(model)


LOADING_OPTIONS = {"device": Device, "dtype": Dtype, "online": Online, "allow_pickle": AllowPickle,
                   "trust_remote_code": TrustRemote, "revision": Revision, "device_map": DeviceMap,
                   "device_max_memory": DeviceMaxMemory, "load_in": LoadIn}


def loads_models(*names: str, **defaults):
    """A command that takes ``loader: Loader`` gets the loading options ``names`` (all by default) on its
    command line, after its own options; ``defaults`` overrides a default, e.g. ``device="cpu"``.

    Typer reads the rewritten signature, so the command's annotations must resolve in its own module.
    """
    names = names or tuple(LOADING_OPTIONS)
    base = {f.name: f.default for f in fields(Loader)}

    def decorate(fn):
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "loader"]
        added = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=LOADING_OPTIONS[n],
                                   default=defaults.get(n, base[n])) for n in names]

        @functools.wraps(fn)
        def command(**kwargs):
            loader = Loader(**{**base, **defaults, **{n: kwargs.pop(n) for n in names}})
            return fn(**kwargs, loader=loader)

        command.__signature__ = inspect.Signature(own + added)
        command.__annotations__ = {p.name: p.annotation for p in own + added}
        return command

    return decorate


MAX_FILE_BYTES = 64 * 2**20  # --file: far more text than one run draws; /dev/zero or a FIFO would never end


def read_texts(texts: list[str] | None, file: Path | None) -> list[str]:
    """Texts from arguments, or one per line of a file ('-' reads standard input), split at newlines only."""
    from attnviz.report.inputs import split_records

    if file is not None:
        name = "standard input" if str(file) == "-" else str(file)
        lines = split_records(_read_capped(file, name))
        texts = [*(texts or []), *(line for line in lines if line.strip())]
        if not texts:
            raise BadInput(f"{name} has no text")
    if not texts:
        raise BadInput("no input: give a TEXT, or --file FILE with one text per line")
    if any(not t.strip() for t in texts):
        raise BadInput("text is empty")
    return texts


def _read_capped(file: Path, name: str) -> str:
    """At most MAX_FILE_BYTES of ``file`` as UTF-8; a larger (or endless) source is BadInput, read no further."""
    try:
        if str(file) == "-":
            data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        else:
            with open(file, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise BadInput(f"{name} is larger than {MAX_FILE_BYTES // 2**20} MiB; give a regular file of texts "
                           "(`attnviz report` reads large files in batches)")
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise BadInput(f"cannot read {name}: {getattr(err, 'strerror', None) or err}") from None


def config_defaults(start: Path | None = None) -> dict:
    """``[tool.attnviz]`` of the nearest pyproject.toml: shared keys apply to every command; a table that is
    not shaped like options is BadInput (cli/pyproject.py)."""
    from attnviz.cli.pyproject import read_table, split

    path, table = read_table(start)
    return split(table, path) if path is not None else {}
