"""TimeCache: the decoder caches' deferred beam reorder equals select-then-concatenate."""

from __future__ import annotations

import torch

from nmt.modules.base import TimeCache, extend_cache, reorder_state


def test_select_defers_and_append_applies_the_composed_selection():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(6, 2, 4, 3, generator=g)  # (N, H, t, dh)
    first, second = torch.tensor([5, 0, 0, 2, 1, 3]), torch.tensor([1, 1, 4, 0])
    cache = TimeCache(data).select(first).select(second)
    assert cache.data is data  # nothing copied yet
    new = torch.randn(4, 2, 1, 3, generator=g)
    grown = cache.append(new)
    expected = torch.cat([data[first][second], new], dim=2)
    assert grown.rows is None and torch.equal(grown.data, expected)
    assert torch.equal(cache.tensor(), data[first][second])


def test_extend_cache_starts_contiguous_and_grows_without_pending_rows():
    x = torch.randn(3, 1, 2, 4).transpose(1, 2)  # (N, H, 1, dh), strided as split heads are
    cache, k = extend_cache(None, x)
    assert k.is_contiguous() and torch.equal(k, x)
    cache, k = extend_cache(cache, x * 2)
    assert k.shape == (3, 2, 2, 4) and torch.equal(k[:, :, 1:], x * 2)


def test_reorder_state_selects_time_caches_and_tensors_alike():
    data, flat = torch.randn(4, 1, 2, 1), torch.arange(4.0)
    index = torch.tensor([3, 3, 1])
    out = reorder_state({"k": TimeCache(data), "x": flat, "t": 2}, index)
    assert torch.equal(out["k"].tensor(), data[index]) and torch.equal(out["x"], flat[index]) and out["t"] == 2


def test_append_with_gradients_stays_differentiable():
    data = torch.randn(2, 1, 3, 2, requires_grad=True)
    new = torch.randn(2, 1, 1, 2, requires_grad=True)
    grown = TimeCache(data).select(torch.tensor([1, 1])).append(new)
    grown.data.sum().backward()
    assert torch.equal(data.grad[1], torch.full((1, 3, 2), 2.0)) and torch.equal(data.grad[0], torch.zeros(1, 3, 2))
    assert torch.equal(new.grad, torch.ones(2, 1, 1, 2))
