"""TimeCache: decoder caches grown in place or copied, with deferred row selection, always hold what
select-then-concatenate would; a cache overwritten in place refuses to be read."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from nmt.modules import base
from nmt.modules.base import MixerState, TimeCache, extend_cache, reorder_state


def _random_walk(seed: int, steps: int = 40) -> None:
    """Random appends and row selections (permutations, repeats, shrinking, growing) on the latest
    cache, checked after each operation against plain tensors grown by cat and index_select."""
    g = torch.Generator().manual_seed(seed)
    rows, H, dh = 4, 2, 3
    ref = torch.randn(rows, H, 1, dh, generator=g)  # (N, H, t, dh)
    cache, _ = extend_cache(None, ref.clone())
    for _ in range(steps):
        kind = int(torch.randint(0, 4, (1,), generator=g))
        if kind == 0:  # beam-like reorder: same number of rows, repeats allowed
            index = torch.randint(0, rows, (rows,), generator=g)
        elif kind == 1:  # mostly-identity reorder (hypotheses keep their rows)
            index = torch.arange(rows)
            index[int(torch.randint(0, rows, (1,), generator=g))] = int(torch.randint(0, rows, (1,), generator=g))
        elif kind == 2:  # rows end or are repeated (a different row count)
            n = int(torch.randint(1, 7, (1,), generator=g))
            index = torch.randint(0, rows, (n,), generator=g)
        else:
            index = None
        if index is not None:
            cache, ref, rows = cache.select(index), ref.index_select(0, index), index.numel()
            assert torch.equal(cache.tensor(), ref)
        new = torch.randn(rows, H, 1, dh, generator=g)
        cache, grown = extend_cache(cache, new)
        ref = torch.cat([ref, new], dim=2)
        assert torch.equal(grown, ref) and torch.equal(cache.tensor(), ref)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("sparse", [True, False], ids=["moved rows only", "every row (accelerators)"])
def test_any_sequence_of_appends_and_selections_matches_cat_and_index_select(seed, sparse, monkeypatch):
    if not sparse:
        monkeypatch.setattr(base, "SPARSE_REORDER_DEVICES", ())
    _random_walk(seed)


def test_select_copies_nothing_and_greedy_appends_write_in_place():
    cache, _ = extend_cache(None, torch.randn(3, 2, 1, 4))
    cache, _ = extend_cache(cache, torch.randn(3, 2, 1, 4))  # fresh storage with spare room
    ptr = cache.data.data_ptr()
    assert cache.select(torch.tensor([2, 0, 1])).data.data_ptr() == ptr
    for _ in range(TimeCache.SPARE):
        cache, k = extend_cache(cache, torch.randn(3, 2, 1, 4))
        assert k.data_ptr() == ptr  # no copy while there is room
    cache, k = extend_cache(cache, torch.randn(3, 2, 1, 4))
    assert k.data_ptr() != ptr and k.shape == (3, 2, TimeCache.SPARE + 3, 4)  # out of room: copied once


def test_an_earlier_cache_keeps_its_prefix_after_a_later_append_and_can_branch():
    cache, _ = extend_cache(None, torch.ones(2, 1, 1, 2))
    cache, _ = extend_cache(cache, torch.full((2, 1, 1, 2), 2.0))
    later, _ = extend_cache(cache, torch.full((2, 1, 1, 2), 3.0))  # in place
    assert torch.equal(cache.tensor()[:, 0, :, 0], torch.tensor([[1.0, 2.0], [1.0, 2.0]]))
    branch, _ = extend_cache(cache, torch.full((2, 1, 1, 2), 9.0))  # a second child: copied, not in place
    assert torch.equal(branch.tensor()[:, 0, :, 0], torch.tensor([[1.0, 2.0, 9.0]] * 2))
    assert torch.equal(later.tensor()[:, 0, :, 0], torch.tensor([[1.0, 2.0, 3.0]] * 2))


def test_a_cache_whose_rows_were_reordered_in_place_refuses_to_be_read():
    cache, _ = extend_cache(None, torch.arange(3.0).view(3, 1, 1, 1))
    cache, _ = extend_cache(cache, torch.zeros(3, 1, 1, 1))  # room to grow in place
    child = cache.select(torch.tensor([0, 0, 2])).append(torch.zeros(3, 1, 1, 1))
    assert torch.equal(child.tensor()[:, 0, 0, 0], torch.tensor([0.0, 0.0, 2.0]))
    with pytest.raises(RuntimeError, match="stale decoder cache"):
        cache.tensor()
    with pytest.raises(RuntimeError, match="stale decoder cache"):
        cache.append(torch.zeros(3, 1, 1, 1))


def test_an_identity_selection_leaves_other_caches_readable():
    cache, _ = extend_cache(None, torch.randn(3, 1, 1, 2))
    cache, _ = extend_cache(cache, torch.randn(3, 1, 1, 2))
    before = cache.tensor().clone()
    cache.select(torch.arange(3)).append(torch.randn(3, 1, 1, 2))
    assert torch.equal(cache.tensor(), before)


def test_extend_cache_starts_contiguous():
    x = torch.randn(3, 1, 2, 4).transpose(1, 2)  # (N, H, 1, dh), strided as split heads are
    cache, k = extend_cache(None, x)
    assert k.is_contiguous() and torch.equal(k, x)


@dataclass(eq=False)
class Cached(MixerState):
    k: TimeCache | None = None
    x: torch.Tensor | None = None
    nested: tuple = ()
    shared: str = "all rows"


def test_a_typed_state_reorders_time_caches_tensors_and_nested_states_alike():
    data, flat = torch.randn(4, 1, 2, 1), torch.arange(4.0)
    index = torch.tensor([3, 3, 1])
    state = Cached(t=2, k=TimeCache(data), x=flat, nested=(Cached(x=flat * 2), None))
    out = reorder_state(state, index)
    assert type(out) is Cached and out is not state and out.t == 2 and out.shared == "all rows"
    assert torch.equal(out.k.tensor(), data[index]) and torch.equal(out.x, flat[index])
    assert torch.equal(out.nested[0].x, (flat * 2)[index]) and out.nested[1] is None
    assert torch.equal(state.x, flat)  # the input is left as it was
    assert reorder_state(None, index) is None  # a mixer that has not stepped yet
    copied = state.copy()
    copied.t = 5
    assert state.t == 2 and copied.x is state.x


def test_append_with_gradients_stays_differentiable():
    data = torch.randn(2, 1, 3, 2, requires_grad=True)
    new = torch.randn(2, 1, 1, 2, requires_grad=True)
    grown = TimeCache(data).select(torch.tensor([1, 1])).append(new)
    grown.data.sum().backward()
    assert torch.equal(data.grad[1], torch.full((1, 3, 2), 2.0)) and torch.equal(data.grad[0], torch.zeros(1, 3, 2))
    assert torch.equal(new.grad, torch.ones(2, 1, 1, 2))
