"""Long inputs: per-head statistics computed block by block by the kernel equal those of eager's full weights.

The reference is computed here from eager ``output_attentions`` in float64 with the plain formulas; the kernel
runs one query per block (the smallest blocks), on padded batches.
"""

from __future__ import annotations

import pytest
import torch

from attnviz.errors import BadInput
from attnviz.maps import STATS, AttentionMaps
from attnviz.models import load_model
from attnviz.recording import capture
from conftest import load, save
from conftest import picture, save_vision

TEXTS = ["the cat sat on the mat and ran far", "猫 在 上", "hello world is big"]
TOP_K, R = 3, 3  # R does not divide the lengths: uneven overview cells


@pytest.fixture(autouse=True)
def one_query_per_block(monkeypatch):
    monkeypatch.setattr("attnviz.recording.sinks.BLOCK_BYTES", 1)


def reference(weights: torch.Tensor, q_mask: torch.Tensor, k_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The statistics of full weights (layer, B, H, Q, K), straight from their definitions, in float64."""
    w = weights.double() * q_mask.double()[None, :, None, :, None]  # padding queries count for nothing
    q_len, k_len = w.shape[-2:]
    logw = torch.where(w > 0, w.log(), torch.zeros(()))
    first = k_mask.float().argmax(-1)  # (B,)
    sink = torch.stack([w[:, b, :, :, int(first[b])] for b in range(w.shape[1])], dim=1)
    q_pos = torch.arange(q_len) + (k_len - q_len)
    span = (q_pos[:, None] - torch.arange(k_len)[None, :]).abs().double()
    qb, kb = torch.arange(q_len) * min(R, q_len) // q_len, torch.arange(k_len) * min(R, k_len) // k_len
    overview = torch.stack([torch.stack([w[..., qb == i, :][..., kb == j].mean((-2, -1))
                                         for j in range(min(R, k_len))], -1) for i in range(min(R, q_len))], -2)
    return {"entropy": -(w * logw).sum(-1), "sink": sink, "distance": (w * span).sum(-1),
            "received": w.sum(-2), "overview": overview, "topk_weight": w.topk(min(TOP_K, k_len), dim=-1).values}


def assert_stats(stats: dict, prefix: str, weights, q_mask, k_mask) -> None:
    want = reference(weights, q_mask, k_mask)
    for name, ref in want.items():
        got = stats[prefix + name].double()
        assert got.shape == ref.shape, name
        assert (got - ref).abs().max().item() <= 1e-5 * max(1.0, ref.abs().max().item()), name
    # the kept indices point at the kept weights
    idx, top = stats[prefix + "topk_index"], stats[prefix + "topk_weight"].double()
    real = weights.double() * q_mask.double()[None, :, None, :, None]
    assert (real.gather(-1, idx) - top).abs().max().item() <= 1e-5


def _eager(name, folder, batch):
    with torch.no_grad():
        return load(name, folder, "eager")(**batch, output_attentions=True)


@pytest.mark.parametrize("name,side", [("bert", "right"), ("llama", "left")])
def test_statistics_equal_eager_on_a_padded_batch(name, side, tmp_path):
    folder = save(name, tmp_path)
    loaded = load_model(str(folder), device="cpu")
    loaded.tokenizer.padding_side = side
    maps = capture(loaded, TEXTS, keep="stats", top_k=TOP_K, overview=R)
    assert maps.weights is None and set(STATS) <= set(maps.stats)
    enc = loaded.encode(TEXTS)
    eager = torch.stack(_eager(name, folder, enc.batch).attentions)
    assert_stats(maps.stats, "", eager, enc.mask, enc.mask)
    pad_keys = enc.mask == 0  # (B, K)
    assert pad_keys.any() and maps.received.permute(0, 2, 1, 3)[:, :, pad_keys].abs().max().item() == 0.0


@pytest.mark.parametrize("block_bytes", [1, 3 * 12 * 4 * 8], ids=["one-query", "three-queries"])  # 4 heads, 8 keys
def test_causal_statistics_without_padding_equal_eager(block_bytes, tmp_path, monkeypatch):
    """No padding: transformers passes no mask and the kernel masks the future itself, computing each block only up
    to its last row's key (the first blocks see fewer keys than top-k, and fewer overview columns)."""
    monkeypatch.setattr("attnviz.recording.sinks.BLOCK_BYTES", block_bytes)
    folder = save("llama", tmp_path)
    loaded = load_model(str(folder), device="cpu")
    text = ["the cat sat on the mat"]
    maps = capture(loaded, text, keep="stats", top_k=TOP_K, overview=R, queries=(0, 2))
    enc = loaded.encode(text)
    assert bool(enc.mask.all())
    eager = torch.stack(_eager("llama", folder, enc.batch).attentions)
    assert_stats(maps.stats, "", eager, enc.mask, enc.mask)
    assert (maps.weights - eager[:, :, :, 0:2]).abs().max().item() <= 1e-6


def test_statistics_of_long_causal_blocks_equal_the_definitions():
    """Rows long enough for the grouped top-k search (``stats.top_keys``), blocks cut at their last row's key, peaked
    rows with large scores (the entropy is taken from the scores), and an example whose last queries are padding."""
    from attnviz.stats import BlockStats

    b, h, n, rows = 2, 3, 700, 64
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(b, h, n, n, generator=gen) * 6 + 300  # (B, H, Q, K)
    scores[0, 1, :, 5] = 400.0  # one key takes nearly everything: entropies near 0
    scores.masked_fill_(torch.ones(n, n, dtype=torch.bool).triu(1), torch.finfo(torch.float32).min)
    weights = torch.softmax(scores, -1)
    mask = torch.ones(b, n)
    mask[1, -100:] = 0
    acc = BlockStats((b, h, n, n), torch.zeros(b), mask, TOP_K, R)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        acc.add(weights[:, :, start:stop, :stop], start, scores[:, :, start:stop, :stop].clone())
    assert_stats({name: t[None] for name, t in acc.result().items()}, "", weights[None], mask, mask)


def test_t5_encoder_decoder_and_cross_statistics_equal_eager(tmp_path):
    folder = save("t5", tmp_path)
    loaded = load_model(str(folder), device="cpu")
    maps = capture(loaded, TEXTS, keep="stats", top_k=TOP_K, overview=R)
    enc = loaded.encode(TEXTS)
    out = _eager("t5", folder, enc.batch)
    src, tgt = enc.mask, enc.decoder_mask
    assert_stats(maps.stats, "", torch.stack(out.encoder_attentions), src, src)
    assert_stats(maps.stats, "decoder.", torch.stack(out.decoder_attentions), tgt, tgt)
    assert_stats(maps.stats, "cross.", torch.stack(out.cross_attentions), tgt, src)


def test_vit_statistics_equal_eager(tmp_path):
    folder = save_vision("vit", tmp_path)
    loaded = load_model(str(folder), device="cpu")
    images = [picture(seed=0), picture(seed=1)]
    maps = capture(loaded, images, keep="stats", top_k=TOP_K, overview=R)
    enc = loaded.encode(images)
    with torch.no_grad():
        loaded.model.set_attn_implementation("eager")
        eager = torch.stack(loaded.model(**enc.batch, output_attentions=True).attentions)
    assert_stats(maps.stats, "", eager, enc.mask, enc.mask)


def test_minilm_statistics_and_kept_query_rows_equal_the_full_capture(minilm, tmp_path):
    texts = ["The movie was not good, but the music was wonderful.", "short one"]
    full = capture(minilm, texts)
    maps = capture(minilm, texts, keep="stats", top_k=TOP_K, overview=R, queries=(2, 5))
    assert_stats(maps.stats, "", full.weights, full.mask, full.mask)
    assert maps.query_start == 2 and torch.allclose(maps.weights, full.weights[:, :, :, 2:5], atol=1e-6)
    back = AttentionMaps.load(maps.save(tmp_path / "long.safetensors"))
    assert back.query_start == 2 and all(torch.equal(back.stats[n], maps.stats[n]) for n in STATS)


def test_the_blocked_path_gives_the_full_paths_output(minilm):
    from attnviz.recording import recording
    from attnviz.recording.plan import Plan

    enc = minilm.encode(["The movie was not good, but the music was wonderful.", "short one"])
    with torch.inference_mode():
        with recording(minilm.model):
            full = minilm.model(**enc.batch).last_hidden_state
        with recording(minilm.model, plan=Plan(keep="stats")):
            blocked = minilm.model(**enc.batch).last_hidden_state
    # One query per block changes the order of float32 sums (the matmul is cut by rows): 1e-5 of the scale.
    assert (full - blocked).abs().max().item() <= 1e-5 * full.abs().max().item()


def test_memory_is_planned_auto_falls_back_to_statistics_and_what_cannot_fit_is_refused(minilm):
    texts = ["the music was wonderful " * 50]  # 202 tokens: full maps ~15 MB, statistics ~7 MB
    auto = capture(minilm, texts, keep="auto", max_memory=10 * 2**20)
    assert auto.weights is None and auto.entropy is not None
    assert any("keeping per-head statistics" in n for n in auto.notes)
    assert capture(minilm, texts, keep="auto").weights is not None  # fits: full maps, as before
    with pytest.raises(BadInput, match=r"needs about .* but may use .*try --keep stats"):
        capture(minilm, texts, keep="full", max_memory=10 * 2**20)
    with pytest.raises(BadInput, match="needs about"):
        capture(minilm, texts, keep="stats", max_memory=1000)
    with pytest.raises(BadInput, match="--overview"):
        capture(minilm, texts, keep="stats", overview=1000)


def test_a_statistics_only_maps_file_loads_back_and_a_lying_one_is_refused(minilm, tmp_path):
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    maps = capture(minilm, ["the music was wonderful"], keep="stats")
    path = maps.save(tmp_path / "stats.safetensors")
    back = AttentionMaps.load(path)
    assert back.weights is None and all(torch.equal(back.stats[n], maps.stats[n]) for n in STATS)
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors["entropy"] = tensors["entropy"][..., :-1].contiguous()  # one position short
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(BadInput, match="entropy is shaped"):
        AttentionMaps.load(tmp_path / "bad.safetensors")


def test_long_views_draw_the_statistics_of_stats_maps_and_of_full_maps(minilm):
    from attnviz.render.long import long_view
    from attnviz.render.output import figure_bytes

    texts = ["the music was wonderful " * 8, "a quiet film"]
    stats = capture(minilm, texts, keep="stats", overview=8)
    full = capture(minilm, texts)
    for maps in (stats, full):
        fig = long_view(maps, "positions", layer=2, head=3, example=1)
        real = int(maps.mask[1].sum())
        entropy_line = fig.axes[0].lines[0].get_ydata()
        want = capture(minilm, texts, keep="stats").stats["entropy"][2, 1, 3, :real].numpy()
        assert len(entropy_line) == real and abs(entropy_line - want).max() <= 1e-5
        for view in ("overview", "heads"):
            assert figure_bytes(long_view(maps, view, layer=2, head=3), "png", dpi=40)[:4] == b"\x89PNG"
    grid = long_view(stats, "overview", layer=2, head=3).axes[0].images[0].get_array()
    assert grid.shape == (8, 8) and abs(grid - stats.stats["overview"][2, 0, 3].numpy()).max() == 0
    with pytest.raises(BadInput, match="head 99 is out of range"):
        long_view(stats, "overview", layer=2, head=99)


def test_the_command_line_keeps_statistics_draws_long_views_and_refuses_what_cannot_fit(tmp_path):
    from typer.testing import CliRunner

    from attnviz.cli import app

    run = CliRunner().invoke
    text = "the music was wonderful " * 12
    res = run(app, ["capture", text, "--keep", "stats", "--queries", "3-5", "--top-k", "4", "--overview", "16",
                    "--out", str(tmp_path / "m.safetensors")])
    assert res.exit_code == 0, res.output
    maps = AttentionMaps.load(tmp_path / "m.safetensors")
    assert maps.weights.shape[3] == 3 and maps.query_start == 3 and maps.topk_index.shape[-1] == 4
    for view in ("overview", "positions", "heads"):
        res = run(app, ["heatmap", "--from", str(tmp_path / "m.safetensors"), "--view", view, "--out",
                        str(tmp_path / f"{view}.png")])
        assert res.exit_code == 0 and (tmp_path / f"{view}.png").read_bytes()[:4] == b"\x89PNG", res.output
    res = run(app, ["heatmap", "--from", str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "head.png")])
    assert res.exit_code == 2 and "full rows of queries 3-5" in res.output and not (tmp_path / "head.png").exists()
    res = run(app, ["capture", text, "--keep", "full", "--max-memory", "100KB", "--out", str(tmp_path / "x.safetensors")])
    assert res.exit_code == 2 and "needs about" in res.output and not (tmp_path / "x.safetensors").exists()
    res = run(app, ["heatmap", text, "--queries", "9-2"])
    assert res.exit_code == 2 and "--queries" in res.output


def test_causal_blocks_take_more_rows_where_they_see_fewer_keys():
    """Over a causal input the kernel's early blocks take more query rows (``causal_rows``): no block's scores exceed
    those of a full block (rows x K), there are about half as many blocks as with a fixed row count, and the
    output is SDPA's."""
    import torch.nn.functional as F

    from attnviz.attention.kernel import SINK, attention

    class Counting:  # a statistics sink that only records the blocks it is handed
        def __init__(self):
            self.blocks = []

        def block_rows(self, shape, device=None):
            self.device = device
            return 4

        def block(self, weights, start, scores=None):
            self.blocks.append((start, *weights.shape[2:]))

    class Causal(torch.nn.Module):
        is_causal = True

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 256, 8, generator=gen) for _ in range(3))
    module, sink = Causal().eval(), Counting()
    setattr(module, SINK, sink)
    with torch.inference_mode():
        out, _ = attention(module, q, k, v, None)
    want = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)
    assert (out - want).abs().max().item() <= 1e-5
    starts = [s for s, _, _ in sink.blocks]
    assert starts == sorted(starts) and starts[0] == 0 and sum(n for _, n, _ in sink.blocks) == 256
    assert all(n * width <= 4 * 256 and width == s + n for s, n, width in sink.blocks)
    assert sink.blocks[0][1] > 4 and len(sink.blocks) <= 0.6 * 256 / 4  # 36 against 64
    assert sink.device == q.device  # the sink sizes its blocks for the device they are computed on


def test_blocks_are_larger_on_a_gpu_within_a_tenth_of_its_free_memory(monkeypatch):
    from attnviz.recording.plan import BLOCK_BYTES, GPU_BLOCK_BYTES
    from attnviz.recording.sinks import block_budget

    monkeypatch.setattr("attnviz.recording.sinks.BLOCK_BYTES", BLOCK_BYTES)  # undo this module's one-query blocks
    assert block_budget(None) == block_budget(torch.device("cpu")) == BLOCK_BYTES
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for free, want in [(100 * 2**30, GPU_BLOCK_BYTES), (2**30, 2**30 // 10), (10 * 2**20, BLOCK_BYTES)]:
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None, free=free: (free, 80 * 2**30))
        assert block_budget(torch.device("cuda", 0)) == want
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (100 * 2**30, 100 * 2**30))
    assert block_budget(torch.device("cuda", 0), max_memory=200 * 2**20) == 50 * 2**20  # within --max-memory
