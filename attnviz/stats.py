"""Per-head statistics of attention, reduced exactly block by block of queries: never L x L at once.

What long-context work measures per head: row entropy; the share each query gives the first real token
(attention sinks, arXiv:2309.17453); the mean distance |q - k| a query looks back (lost in the middle,
arXiv:2307.03172); the attention each key receives (H2O / SnapKV column scores); the top-k keys of every
query (retrieval heads, arXiv:2404.15574); and a pooled R x R overview (block means) of the whole map.
"""

from __future__ import annotations

import numpy as np
import torch

GROUP = 8  # keys per group of the top-k search (``top_keys``)
DIRECT = 128  # a row this short is searched directly
NAMES = ("entropy", "sink", "distance", "received", "overview", "topk_index", "topk_weight")


class BlockStats:
    """Accumulates the statistics of one attention call from its query blocks.

    ``first_key`` (B,) is each example's first real key (its sink token); ``query_mask`` (B, Q) and
    ``key_mask`` (B, K) are 1 on real positions: padding queries get zeros, padding keys receive nothing.
    Every tensor is float32 on the CPU: (B, H, Q) for the row statistics, (B, H, K) for ``received``,
    (B, H, Rq, Rk) for ``overview`` and (B, H, Q, k) for the top-k keys.
    """

    def __init__(self, shape: tuple[int, int, int, int], first_key: torch.Tensor, query_mask: torch.Tensor,
                 top_k: int, overview: int):
        self.shape = shape
        b, h, q, k = shape
        self.q_len, self.k_len = q, k
        self.rq, self.rk = min(overview, q), min(overview, k)
        self.top_k = min(top_k, k)
        self.first_key, self.query_mask = first_key.long(), query_mask.float()
        self.last_first_key = int(self.first_key.max()) if self.first_key.numel() else 0  # read here, not per block
        self.all_real = bool(self.query_mask.all())
        self.device: torch.device | None = None  # the accumulators live where the weights are computed

    def _start(self, device: torch.device) -> None:
        b, h, q, k = self.shape
        zeros = lambda *size: torch.zeros(*size, device=device)  # noqa: E731
        self.device = device
        self.first_key, self.query_mask = self.first_key.to(device), self.query_mask.to(device)
        self.rows = {n: zeros(b, h, q) for n in ("entropy", "sink", "distance")}
        self.received, self.cells = zeros(b, h, k), zeros(b, h, self.rq, self.rk)
        self.topk_index = torch.zeros(b, h, q, self.top_k, dtype=torch.long, device=device)
        self.topk_weight = zeros(b, h, q, self.top_k)
        k_bin = torch.arange(k, device=device) * self.rk // k  # (K,) overview column of each key
        # (K, Rk) one-hot of each key's overview column, for the product off the CPU (the CPU sums with reduceat)
        self.k_bins = None if device.type == "cpu" else torch.nn.functional.one_hot(k_bin, self.rk).float()
        self.k_starts = np.searchsorted(k_bin.cpu().numpy(), np.arange(self.rk))  # first key of each column
        self.k_pos = torch.arange(k, dtype=torch.float32, device=device)

    def add(self, weights: torch.Tensor, start: int, scores: torch.Tensor | None = None) -> None:
        """Fold in the rows ``start : start + n`` of one call's weights (B, H, n, W), any device or dtype. A block may
        stop at its W-th key (W <= K, a causal block's last row): the keys after it have weight 0. ``scores`` (B, H,
        n, W), the scores the softmax took, give the entropy without a logarithm per weight; they are overwritten.

        One pass over the block per statistic, each a fused reduction or a product; padding queries are zeroed in
        the (B, H, Q) results and in the row weights of the column sums, never in a copy of the block.
        """
        if self.device is None:
            self._start(weights.device)
        w = weights.detach().to(self.device, torch.float32)  # (B, H, n, W)
        n, width = w.shape[2:]
        rows = slice(start, start + n)
        real = None if self.all_real else self.query_mask[:, None, rows]  # (B, 1, n)
        q_pos = torch.arange(start, start + n, dtype=torch.float32, device=self.device) + (self.k_len - self.q_len)
        span = (self.k_pos[None, :width] - q_pos[:, None]).abs_()  # (n, W) |q - k|, built in float32 directly
        # each row's dot product with its own |q - k| row: one product per query, no (B, H, n, W) temporary
        distance = torch.einsum("bhik,ik->bhi", w, span)
        top = self._top(w)
        found = {"entropy": self._entropy(w, scores, top), "sink": self._sink(w), "distance": distance}
        for name, value in found.items():
            self.rows[name][:, :, rows] = value if real is None else value * real
        self.topk_weight[:, :, rows] = top[0] if real is None else top[0] * real[..., None]
        self.topk_index[:, :, rows] = top[1]
        self._columns(w, start, real)

    def _entropy(self, w: torch.Tensor, scores: torch.Tensor | None, top: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """-sum w log w (B, H, n). From the scores s (overwritten) and the row's largest weight w_j (``top``, the
        top-k search's first value and key): log w = (s - s_j) + log w_j for every key of a softmax row, so the
        entropy is -sum w (s - s_j) - log(w_j) * sum w: two sums of terms of one sign (s_j is the largest score), no
        logarithm per weight and no search for the maxima. It holds beside gpt-oss's sink too (the row's weights then
        sum to less than 1). A row with an infinite score (a -inf mask) falls back to the definition."""
        plain = lambda: -torch.special.xlogy(w, w).sum(-1)  # noqa: E731
        if scores is None:
            return plain()
        s = scores.detach().to(self.device, torch.float32)  # (B, H, n, W), in place: the kernel is done with them
        largest, key = top[0][..., 0], top[1][..., :1].clamp(max=w.shape[-1] - 1)  # (B, H, n), (B, H, n, 1)
        spread = s.sub_(s.gather(-1, key)).mul_(w).sum(-1)  # (B, H, n) sum w (s - s_j) <= 0
        entropy = spread.neg_().sub_(largest.log().mul_(w.sum(-1)))  # (B, H, n)
        return entropy if bool(torch.isfinite(entropy).all()) else plain()

    def _sink(self, w: torch.Tensor) -> torch.Tensor:
        """(B, H, n, W) -> (B, H, n): each row's weight on its example's first real key (0 past the block's keys)."""
        first = self.first_key.clamp(max=w.shape[-1] - 1)[:, None, None, None].expand(*w.shape[:3], 1)
        share = w.gather(-1, first)[..., 0]
        if self.last_first_key < w.shape[-1]:  # every example's first key is in the block (known on the host)
            return share
        return share * (self.first_key < w.shape[-1])[:, None, None]

    def _top(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(values, keys) (B, H, n, k) of each row's k largest weights, largest first (``top_keys``)."""
        k, width = self.top_k, w.shape[-1]
        if width < k:
            w = torch.nn.functional.pad(w, (0, k - width))  # the keys past W weigh 0
        keys = top_keys(w, k)  # (B, H, n, k) in no order
        values = w.gather(-1, keys)
        order = values.sort(-1, descending=True)  # k values a row: cheap
        return order.values, keys.gather(-1, order.indices)

    def _columns(self, w: torch.Tensor, start: int, real: torch.Tensor | None) -> None:
        """The column sums: each key's received weight, and the overview's cells. The block's rows are first summed
        by overview row (one product with a (rows, n) one-hot, the padding queries' rows weighted 0); the key
        columns are then binned on those few rows."""
        n, width = w.shape[2:]
        q_bin = torch.arange(start, start + n, device=self.device) * self.rq // self.q_len  # (n,)
        first, last = start * self.rq // self.q_len, (start + n - 1) * self.rq // self.q_len  # on the host: no sync
        rows = torch.arange(first, last + 1, device=self.device)
        group = (rows[:, None] == q_bin[None, :]).float()  # (r, n) one-hot, built without reading the device
        if real is not None:
            group = group * real[:, :, None, :]  # (B, 1, r, n)
        by_row = torch.matmul(group, w)  # (B, H, r, W)
        self.received[..., :width] += by_row.sum(-2)
        cols = self._bin_keys(by_row)  # (B, H, r, bins the W keys reach)
        self.cells[..., first: first + by_row.shape[2], : cols.shape[-1]] += cols

    def _bin_keys(self, w: torch.Tensor) -> torch.Tensor:
        """(B, H, r, W) -> (B, H, r, bins) sums over each overview column's keys, for the columns whose first key is
        among the W: numpy's reduceat on the CPU (one pass), a product with the one-hot bin matrix elsewhere (a GPU
        multiplies faster than it scatters)."""
        width = w.shape[-1]
        bins = int(np.searchsorted(self.k_starts, width))  # columns starting before key W
        if w.device.type == "cpu":
            return torch.from_numpy(np.add.reduceat(w.numpy(), self.k_starts[:bins], axis=-1))
        return torch.matmul(w, self.k_bins[:width, :bins])

    def result(self) -> dict[str, torch.Tensor]:
        """Every statistic (module docstring) on the CPU; the overview as block means."""
        q_count = torch.bincount(torch.arange(self.q_len) * self.rq // self.q_len, minlength=self.rq).float()
        k_count = torch.bincount(torch.arange(self.k_len) * self.rk // self.k_len, minlength=self.rk).float()
        out = {**self.rows, "received": self.received, "overview": self.cells.cpu() / (q_count[:, None] * k_count),
               "topk_index": self.topk_index, "topk_weight": self.topk_weight}
        return {n: t.cpu() for n, t in out.items()}


def top_keys(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (..., k) of the k largest values along the last dim, in no order: exact (a tie may name another key of
    the same value).

    A long row is cut into groups of GROUP keys taken with a stride (group j: keys j, j + c, j + 2c, ...), so that
    each group's maximum is an elementwise maximum of GROUP contiguous rows of c keys, a vectorized pass. The k
    largest values lie in the k groups with the largest maxima (any other group has k groups above it, each holding
    a value at least as large as all of its own), found the same way, recursively; the k x GROUP keys of those groups
    are then searched directly. A direct search runs numpy's SIMD selection on the CPU (torch's top-k costs about
    1 us per row of a few hundred keys, the selection 0.1-0.3 us), torch's top-k elsewhere."""
    n = x.shape[-1]
    c = n // GROUP
    if n <= DIRECT or c < k:
        return _select(x, k)
    body = x[..., : c * GROUP].unflatten(-1, (GROUP, c))  # (..., GROUP, c), a view
    best = top_keys(body.amax(-2), k)  # (..., k) groups
    keys = (torch.arange(GROUP, device=x.device)[:, None] * c + best[..., None, :]).flatten(-2)  # (..., GROUP * k)
    picked = body.gather(-1, best[..., None, :].expand(*best.shape[:-1], GROUP, k)).flatten(-2)
    if n > c * GROUP:  # the last keys, fewer than GROUP, are searched with the picked ones
        tail = torch.arange(c * GROUP, n, device=x.device).expand(*keys.shape[:-1], -1)
        keys, picked = torch.cat([keys, tail], -1), torch.cat([picked, x[..., c * GROUP:]], -1)
    return keys.gather(-1, _select(picked, k))


def _select(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (..., k) of the k largest values along the last dim, in no order."""
    x = x.detach()
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):  # numpy has no bfloat16
        return x.topk(k, sorted=False).indices
    found = np.argpartition(x.contiguous().numpy(), x.shape[-1] - k, axis=-1)[..., -k:]
    return torch.from_numpy(np.ascontiguousarray(found))


def rows_per_block(batch: int, heads: int, keys: int, budget: int) -> int:
    """Queries per block so that one block's float32 scores and weights (about 3 copies) fit in ``budget`` bytes."""
    return max(1, budget // max(1, 3 * 4 * batch * heads * keys))


def of_weights(weights: torch.Tensor, query_mask: torch.Tensor, key_mask: torch.Tensor, *, top_k: int = 8,
               overview: int = 64) -> dict[str, torch.Tensor]:
    """The statistics of full weights (layer, B, h, Q, K) with their masks (B, Q) and (B, K), as the kernel's blocked
    path reduces them: name -> (layer, B, h, ...). A mask that does not fit (a vision model's patches) counts all."""
    b, q, k = weights.shape[1], weights.shape[3], weights.shape[4]
    if tuple(query_mask.shape) != (b, q) or tuple(key_mask.shape) != (b, k):
        query_mask, key_mask = torch.ones(b, q), torch.ones(b, k)
    found = []
    for layer in weights:  # (B, h, Q, K)
        acc = BlockStats(tuple(layer.shape), key_mask.float().argmax(-1), query_mask, top_k, overview)
        acc.add(layer, 0)
        found.append(acc.result())
    return {name: torch.stack([f[name] for f in found]) for name in found[0]}
