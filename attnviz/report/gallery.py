"""`attnviz gallery`: the toy Transformer's attention variants on one example, as PNGs and an index page.

Every text panel runs toy-sentiment's trained weights under a different mask pattern or score
function (the axial panel runs toy-shapes on one image), so the differences come from the variant alone.
"""

from __future__ import annotations

import html
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

from attnviz.recording import capture
from attnviz.errors import BadInput
from attnviz.models import load_model
from attnviz.models.toys.data import generate
from attnviz.models.toys.toy import build_toy
from attnviz.models.toys.zoo import wrap
from attnviz.render.gallery import Panel, overview_figure, panel_figure
from attnviz.render.output import figure_bytes
from attnviz.io import inside, make_folder, slug, write_atomic

EXAMPLE = "the movie was not good today"
MASKS = [  # (name, config changes, caption)
    ("global", dict(mask="global"), "every token attends to every token (BERT, ViT)"),
    ("causal", dict(mask="causal"), "a token sees only itself and earlier tokens (GPT)"),
    ("local window", dict(mask="local", window=3), "a band of ±3 neighbours (Longformer, arXiv:2004.05150)"),
    ("strided sparse", dict(mask="strided", stride=4),
     "the previous 4 tokens plus every 4th one (Sparse Transformer, arXiv:1904.10509)"),
]
SCORES = [
    ("scaled dot-product", "scaled-dot", "softmax(q·k / √d) (Vaswani et al., arXiv:1706.03762)"),
    ("dot-product", "dot", "softmax(q·k), unscaled (Luong et al., arXiv:1508.04025): sharper peaks"),
    ("cosine", "cosine", "softmax(τ·cos(q, k)), τ = 10 (Swin v2, arXiv:2111.09883): bounded scores"),
    ("additive", "additive", "softmax(vᵀ tanh(W_q q + W_k k)) (Bahdanau et al., arXiv:1409.0473); "
     "W_q = W_k = I, v seeded"),
]


def variant(base, **changes):
    """The same trained weights under another mask or score; additive gets W_q = W_k = I and a seeded v."""
    cfg = replace(base.model.config, **changes)
    with torch.random.fork_rng():  # a seeded build that leaves the caller's random stream alone
        torch.manual_seed(0)
        model = _variant_weights(build_toy(cfg), base)
    return wrap(base.name, model.eval(), base.tokenizer, task=base.task, labels=base.labels, source=base.source)


def _variant_weights(model, base):
    """The base toy's trained weights; an additive score's own parameters are set, not trained."""
    missing, _ = model.load_state_dict(base.model.state_dict(), strict=False)
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "add_q"):
                module.add_q.weight.copy_(torch.eye(module.head_dim))
                module.add_k.weight.copy_(torch.eye(module.head_dim))
                module.add_v.weight.normal_(0.0, 1.0)
    if any("add_" not in k for k in missing):
        raise BadInput(f"the variant needs weights the base toy lacks: {missing}")
    return model


def _panel(loaded, inputs, name, group, caption, layer: int) -> Panel:
    maps = capture(loaded, inputs, layers=[layer])
    keep = maps.valid(0)
    w = maps.weights[0, 0].mean(0)[keep][:, keep]  # (Q, K) head-averaged
    tokens = tuple(maps.tokens[0][i] for i in keep.tolist())
    return Panel(name, group, caption, w, tokens, tokens)


def build_panels(text: str = EXAMPLE, layer: int = 0) -> list[Panel]:
    base = load_model("toy-sentiment", device="cpu")
    panels = [_panel(variant(base, **ch), [text], n, "mask pattern", cap, layer) for n, ch, cap in MASKS]
    shapes = load_model("toy-shapes", device="cpu")
    image = Image.fromarray(generate("toy-shapes", 1, 0)[0]["image"])
    grid = shapes.model.config.grid
    panels.append(_panel(variant(shapes, mask="axial"), [image], "axial (image)", "mask pattern",
                         f"a patch sees its own row and column of the {grid}x{grid} grid, plus CLS "
                         "(Ho et al., arXiv:1912.12180)", layer))
    panels += [_panel(variant(base, score=s), [text], n, "score function", cap, layer) for n, s, cap in SCORES]
    return panels


def write_gallery(out: Path, text: str = EXAMPLE, layer: int = 0) -> list[Path]:
    """One PNG per variant, an overview PNG and index.html under ``out``; returns the paths."""
    out = make_folder(out)
    panels = build_panels(text, layer)
    written = []
    for p in panels:
        written.append(write_atomic(inside(out, slug(p.name, 24) + ".png"), figure_bytes(panel_figure(p))))
    title = f"attention variants · layer {layer}, mean over heads · “{text}”"
    written.append(write_atomic(inside(out, "gallery.png"), figure_bytes(overview_figure(panels, title), dpi=90)))
    written.append(write_atomic(inside(out, "index.html"), index_html(panels, written, text).encode("utf-8")))
    return written


# As the batch report's policy, but the pictures are the PNG files beside the page ('self'), not data: URIs.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:"


def index_html(panels: list[Panel], files: list[Path], text: str) -> str:
    e = html.escape
    cards = "".join(
        f'<figure><img src="{e(f.name)}" alt="{e(p.name)}"><figcaption><b>{e(p.name)}</b> '
        f"({e(p.group)}): {e(p.caption)}</figcaption></figure>\n" for p, f in zip(panels, files))
    return (f"<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='Content-Security-Policy' "
            f"content=\"{CSP}\"><title>attention variants</title><style>"
            "body{font-family:sans-serif;margin:2em}figure{display:inline-block;width:340px;vertical-align:top}"
            "img{width:100%}</style></head><body><h1>Attention variants of the toy Transformer</h1>"
            f"<p>One example, <q>{e(text)}</q>, through the same trained weights under each mask pattern and score "
            f"function; the axial panel is one toy-shapes image.</p><img src='gallery.png' alt='overview' "
            f"style='max-width:100%'>\n{cards}</body></html>\n")
