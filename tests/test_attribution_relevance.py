"""Attention relevance by hand: rollout (Abnar & Zuidema 2020, arXiv:2005.00928), gradient rollout and
Chefer et al.'s update rule (arXiv:2103.15679) on small hand-computed cases."""

from __future__ import annotations

import torch

from attnviz.attribution.methods.relevance import chefer, grad_rollout, rollout


def _norm(m):
    return m / m.sum(-1, keepdim=True)


def test_rollout_equals_a_hand_computed_two_layer_case():
    a0 = torch.tensor([[0.8, 0.2], [0.4, 0.6]])
    a1 = torch.tensor([[0.5, 0.5], [0.1, 0.9]])
    # Two heads per layer whose mean is a0 / a1, so head fusion matters.
    w = torch.stack([torch.stack([a0 + 0.1 * torch.tensor([[1., -1], [-1, 1]]), a0 - 0.1 * torch.tensor([[1., -1], [-1, 1]])]),
                     torch.stack([a1, a1])])[:, None]  # (L=2, B=1, H=2, 2, 2)
    r0 = torch.tensor([[(0.8 + 1) / 2, 0.2 / 2], [0.4 / 2, (0.6 + 1) / 2]])  # 0.5 A + 0.5 I, rows sum to 1
    r1 = torch.tensor([[(0.5 + 1) / 2, 0.5 / 2], [0.1 / 2, (0.9 + 1) / 2]])
    expected = torch.tensor([[r1[0, 0] * r0[0, 0] + r1[0, 1] * r0[1, 0], r1[0, 0] * r0[0, 1] + r1[0, 1] * r0[1, 1]],
                             [r1[1, 0] * r0[0, 0] + r1[1, 1] * r0[1, 0], r1[1, 0] * r0[0, 1] + r1[1, 1] * r0[1, 1]]])
    got = rollout(w)[0]
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(got.sum(-1), torch.ones(2))
    assert not torch.allclose(rollout(w, fusion="max")[0], got)


def test_rollout_normalises_rows_not_columns():
    w = _norm(torch.rand(3, 2, 4, 5, 5))
    r = rollout(w)
    assert torch.allclose(r.sum(-1), torch.ones(2, 5), atol=1e-5)


def test_discard_keeps_the_diagonal_and_padding_gets_no_weight():
    w = _norm(torch.rand(2, 1, 2, 4, 4))
    from attnviz.attribution.methods.relevance import _discard

    fused = w.mean(2)  # (L, B, S, S)
    cut = _discard(fused, 0.5)
    n_free = 4 * 4 - 4 - 3  # the diagonal and column 0 are never dropped
    assert ((cut == 0) & (fused > 0)).sum() == 2 * int(0.5 * n_free)  # per layer
    assert torch.equal(torch.diagonal(cut, dim1=-2, dim2=-1), torch.diagonal(fused, dim1=-2, dim2=-1))
    assert torch.equal(cut[..., 0], fused[..., 0])
    free = ~torch.eye(4, dtype=torch.bool)
    free[:, 0] = False
    for f, c in zip(fused.flatten(0, 1), cut.flatten(0, 1)):  # per (S, S) matrix: the weakest free cells go
        assert f[free & (c == 0)].max() <= f[free & (c > 0)].min()
    assert not torch.allclose(rollout(w, discard_ratio=0.5), rollout(w))
    mask = torch.tensor([[1, 1, 1, 0]])
    r = rollout(w, mask=mask)
    assert torch.allclose(r[0, :3, 3], torch.zeros(3))


def test_grad_rollout_pairs_each_layer_with_its_own_gradient():
    w = _norm(torch.rand(2, 1, 2, 3, 3))
    g = torch.zeros_like(w)
    g[1] = 1.0  # only layer 1 matters: layer 0's fused matrix is zero, i.e. pure residual
    expected = _norm(w[1].mean(1) + torch.eye(3))  # (1, 3, 3)
    assert torch.allclose(grad_rollout(w, g), expected, atol=1e-6)
    swapped = torch.zeros_like(w)
    swapped[0] = 1.0
    assert torch.allclose(grad_rollout(w, swapped), _norm(w[0].mean(1) + torch.eye(3)), atol=1e-6)


def test_chefer_follows_the_update_rule():
    w = _norm(torch.rand(2, 1, 2, 3, 3))
    g = torch.randn_like(w)
    r = torch.eye(3)
    for layer in range(2):
        a_bar = (g[layer, 0] * w[layer, 0]).clamp(min=0).mean(0)
        r = r + a_bar @ r
    assert torch.allclose(chefer(w, g)[0], r, atol=1e-6)
