"""diff.html, JUnit XML and Markdown of a snapshot check: hostile strings stay text, files stay whole."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import torch

from attnviz.maps import AttentionMaps
from attnviz.snapshot.ci import md, render_junit, render_markdown
from attnviz.snapshot.html import render_html
from attnviz.snapshot.compare import Tolerance, compare
from attnviz.snapshot.result import CheckResult
from attnviz.snapshot.store import Baseline, input_key

EVIL = "<img src=x onerror=alert(1)> | `code` *bold* \x00\x1b[31m 猫"


def baseline(weights: torch.Tensor, tokens: list[str], text: str = EVIL) -> Baseline:
    maps = AttentionMaps(weights=weights, mask=torch.ones(1, weights.shape[-1], dtype=torch.long), tokens=[tokens],
                         layers=[0, 1], heads=[0, 1], model="m")
    return Baseline(input_key(text), text, maps)


def drifted() -> CheckResult:
    torch.manual_seed(0)
    w = torch.softmax(torch.randn(2, 1, 2, 3, 3) * 3, -1)  # (L, B, H, Q, K)
    moved = w.clone()
    moved[1, 0, 1] = torch.softmax(torch.randn(3, 3), -1)
    tokens = ["<b>", "&amp;", "猫"]
    res = compare(baseline(w, tokens), baseline(moved, tokens), Tolerance())
    tok = compare(baseline(w, tokens, "a <tokens> input"), baseline(w, ["<b>", "x", "猫"], "a <tokens> input"), Tolerance())
    return CheckResult(Tolerance(), [res, tok], unused=["old-baseline"],
                       context=[("torch", "2.3 <old>", "2.13")])


def test_compare_finds_the_moved_head_and_the_token_change():
    result = drifted()
    assert [(h.layer, h.head) for h in result.inputs[0].heads] == [(1, 1)]
    assert result.inputs[1].status == "tokens" and "'&amp;' -> 'x'" in result.inputs[1].message
    assert result.by_layer()[0][:3] == ("encoder", 1, 1)


def test_html_escapes_everything_and_is_self_contained():
    html = render_html(drifted())
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "a &lt;tokens&gt; input" in html and "2.3 &lt;old&gt;" in html
    assert html.count("data:image/png;base64,") == 1 and "layer 1 head 1" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert "default-src 'none'" in html


def test_junit_is_valid_xml_even_with_control_characters():
    root = ET.fromstring(render_junit(drifted()))
    cases = list(root.iter("testcase"))
    assert root.get("tests") == "2" and root.get("failures") == "2" and len(cases) == 2
    assert cases[0].get("name").startswith("<img src=x") and "\x00" not in cases[0].get("name")
    assert "layer 1 head 1" in cases[0].find("failure").get("message")
    assert cases[1].find("failure").get("type") == "tokens"


def test_markdown_cells_cannot_break_the_table():
    text = render_markdown(drifted())
    row = next(line for line in text.splitlines() if line.startswith("| \\<img"))
    assert row.count(" | ") == 8  # nine cells: no pipe from the input splits one
    assert "\\`code\\`" in text and "<img" not in text.replace("\\<", "") and "old-baseline" in text and "\x00" not in text
    assert md("a\nb|c") == "a b\\|c"
