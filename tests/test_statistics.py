"""The pieces of the statistics path: the exact top-k search over long rows and the causal cut of a block."""

from __future__ import annotations

import pytest
import torch

from attnviz.attention.masks import mask_future
from attnviz.stats import top_keys


@pytest.mark.parametrize("width", [9, 129, 1001, 9003])  # direct; one level (a tail of 1); one; three (and tails)
def test_top_keys_find_the_k_largest_of_long_rows_with_ties(width):
    """The grouped top-k search gives torch.topk's values, each named once, in rows with ties: a row whose keys
    are mostly 0 (fewer than k non-zero), a row of equal weights, the largest in the last keys, and a column view (not
    contiguous)."""
    gen = torch.Generator().manual_seed(width)
    rows = torch.softmax(torch.randn(5, width, generator=gen) * 4, -1)
    rows[1, 3:] = 0.0
    rows[2] = 1.0 / width
    rows[3] = torch.randint(0, 4, (width,), generator=gen).float()  # many ties among the largest
    rows[4, -2:] = 1.0  # the largest in the last keys (a tail of fewer than a group)
    for x in (rows, torch.cat([rows, rows]).T.contiguous().T[:5]):
        keys = top_keys(x, 8)
        assert keys.shape == (5, 8)
        assert all(len(set(r.tolist())) == 8 for r in keys)  # 8 different keys a row
        assert torch.equal(x.gather(-1, keys).sort(-1, descending=True).values, x.topk(8).values)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape, start", [((1, 2, 5, 5), 0), ((2, 3, 4, 9), 5), ((1, 1, 300, 300), 0)])
def test_the_causal_cut_gives_the_future_keys_the_dtypes_min(dtype, shape, start):
    """Rows start .. start + n of a block: the keys past each row's own position get exactly the dtype's min (also
    in float16, where adding it to a score below -16 would give -inf), the others keep their scores; the softmax
    equals that of a boolean fill; a second call of the same shape (a kept mask) gives the same."""
    n, width = shape[-2:]
    scores = (torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 40).to(dtype)
    future = torch.arange(width)[None, :] > torch.arange(start, start + n)[:, None]  # (n, W)
    want = scores.masked_fill(future, torch.finfo(dtype).min)
    for _ in range(2):
        got = mask_future(scores.clone(), start)
        assert torch.equal(got, want)
        assert torch.equal(got.float().softmax(-1), want.float().softmax(-1))
