"""JUnit XML and Markdown summaries of a snapshot check, for CI test tabs and job summary pages."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from attnviz.io import write_atomic
from attnviz.snapshot.result import HEAD_COLUMNS, CheckResult, failure_lines, head_cells, short

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text: str) -> str:
    """Characters XML 1.0 cannot hold at all (escaping does not help) become U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def render_junit(result: CheckResult, suite: str = "attnviz.snapshot") -> bytes:
    """One test case per input, a failure naming why; ElementTree escapes every text and attribute."""
    root = ET.Element("testsuite", name=suite, tests=str(len(result.inputs)), failures=str(len(result.failed)),
                      errors="0", skipped="0")
    props = ET.SubElement(root, "properties")
    for key, base, cur in result.context:
        ET.SubElement(props, "property", name=f"changed.{key}", value=_x(f"{base} -> {cur}"))
    for r in result.inputs:
        case = ET.SubElement(root, "testcase", classname=suite, name=_x(r.text[:200]))
        if r.status != "ok":
            fail = ET.SubElement(case, "failure", message=_x(r.headline()), type=r.status)
            fail.text = _x("\n".join(failure_lines(r)))
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"


def md(text: str, limit: int = 60) -> str:
    """Plain text safe inside a Markdown table cell: no pipes, markup, HTML or line breaks."""
    text = short(text, limit)
    text = re.sub("[\x00-\x08\x0b-\x1f\x7f]", "", text)  # control characters (terminal escapes too)
    for ch in "\\`*_[]<>|#!~":
        text = text.replace(ch, "\\" + ch)
    return " ".join(text.split())


def render_markdown(result: CheckResult, top: int = 10) -> str:
    """The verdict, the ``top`` worst heads as a table, then every other reason an input failed."""
    icon = "✅" if result.ok else "❌"
    out = [f"## {icon} attnviz snapshot check", "", md(result.summary(), 400), ""]
    texts = {r.key: r.text for r in result.inputs}
    heads = result.worst_heads(top)
    if heads:
        out += ["| input | " + " | ".join(md(c) for c in HEAD_COLUMNS) + " |", "|" + " --- |" * (len(HEAD_COLUMNS) + 1)]
        out += ["| " + " | ".join([md(texts[h.key]), *(md(c) for c in head_cells(h))]) + " |" for h in heads]
        out.append("")
    for r in result.failed:
        if r.status in ("tokens", "shape"):
            out.append(f"- {md(r.text)}: {md(r.message, 200)}")
    out += [f"- attribution {md(a.method)} on {md(texts[a.key])}: {md(a.problem, 200)}"
            for r in result.inputs for a in r.drifting_attrs]
    if result.context:
        out += ["", "Context that changed: " + "; ".join(f"{md(k)} {md(b, 24)} → {md(c, 24)}" for k, b, c in result.context)]
    if result.unused:
        out += ["", f"Baselines no input uses: {', '.join(md(k) for k in result.unused)}"]
    return "\n".join(out).rstrip() + "\n"


def write_junit(result: CheckResult, path: Path) -> Path:
    return write_atomic(Path(path), render_junit(result))


def write_markdown(result: CheckResult, path: Path) -> Path:
    return write_atomic(Path(path), render_markdown(result).encode("utf-8"))
