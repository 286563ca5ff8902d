"""Token-budget batch samplers: budgets, coverage, seeded order, DDP sharding, resume, eval order."""

from __future__ import annotations

import numpy as np
import pytest

from nmt.data.batching import EvalBatchSampler, TrainBatchSampler, chunk_by_budget, split_to_multiple
from nmt.data.errors import DataError


def lengths(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    src = rng.integers(1, 60, n)
    tgt = np.clip(src + rng.integers(-10, 10, n), 1, None)
    return src, tgt


def assert_budget(batches, src, tgt, max_tokens, max_sentences=0):
    for b in batches:
        b = np.asarray(b)
        assert len(b) * src[b].max() <= max_tokens and len(b) * tgt[b].max() <= max_tokens
        if max_sentences:
            assert len(b) <= max_sentences


@pytest.mark.parametrize("bucketing", [True, False])
def test_budget_and_every_sentence_once_per_epoch(bucketing):
    src, tgt = lengths(1000)
    s = TrainBatchSampler(src, tgt, max_tokens=300, max_sentences=16, seed=3, bucketing=bucketing)
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s)
        assert_budget(batches, src, tgt, 300, 16)
        assert sorted(i for b in batches for i in b) == list(range(1000))


def test_greedy_chunks_are_full():
    src = np.array([5, 5, 5, 5, 9])
    tgt = np.array([3, 3, 3, 3, 3])
    assert [b.tolist() for b in chunk_by_budget(np.arange(5), src, tgt, max_tokens=18)] == [[0, 1, 2], [3, 4]]


def test_bucketing_groups_similar_lengths():
    src, tgt = lengths(2000)
    bucketed = list(TrainBatchSampler(src, tgt, 400, seed=1, bucketing=True))
    random = list(TrainBatchSampler(src, tgt, 400, seed=1, bucketing=False))
    padded = lambda bs: sum(len(b) * tgt[b].max() for b in bs)
    assert len(bucketed) < len(random) and padded(bucketed) < 0.8 * padded(random)


def test_seeded_order_reproducible_and_different_across_epochs():
    src, tgt = lengths(500)
    a, b = TrainBatchSampler(src, tgt, 200, seed=7), TrainBatchSampler(src, tgt, 200, seed=7)
    a.set_epoch(1)
    b.set_epoch(1)
    e1 = list(a)
    assert e1 == list(b)
    a.set_epoch(2)
    assert list(a) != e1
    c = TrainBatchSampler(src, tgt, 200, seed=8)
    c.set_epoch(1)
    assert list(c) != e1


def test_sentence_longer_than_budget_is_an_error():
    with pytest.raises(DataError, match="sentence 1 .*max_tokens=50"):
        TrainBatchSampler(np.array([3, 70]), np.array([3, 4]), 50).epoch_batches()


@pytest.mark.parametrize("world", [2, 3])
def test_ddp_ranks_disjoint_equal_count_and_complete(world):
    src, tgt = lengths(777, seed=4)
    samplers = [TrainBatchSampler(src, tgt, 256, seed=5, rank=r, world_size=world) for r in range(world)]
    for epoch in range(3):
        per_rank = []
        for s in samplers:
            s.set_epoch(epoch)
            per_rank.append(list(s))
        assert len({len(p) for p in per_rank}) == 1
        seen = [i for p in per_rank for b in p for i in b]
        assert sorted(seen) == list(range(777))  # disjoint and complete: nothing dropped or repeated
        for p in per_rank:
            assert_budget(p, src, tgt, 256)


def test_split_to_multiple_counts_splits():
    batches = [np.arange(0, 4), np.arange(4, 6), np.arange(6, 9)]
    out, n = split_to_multiple(batches, 2)
    assert n == 1 and [b.tolist() for b in out] == [[0, 1], [2, 3], [4, 5], [6, 7, 8]]
    out, n = split_to_multiple(batches, 5)
    assert n == 2 and len(out) == 5
    with pytest.raises(DataError, match="same number of batches"):
        split_to_multiple([np.arange(1)], 2)


def test_resume_skips_consumed_batches_with_same_order():
    src, tgt = lengths(600)
    s = TrainBatchSampler(src, tgt, 300, seed=2)
    s.set_epoch(4)
    full = list(s)
    it = iter(s)
    for _ in range(5):
        next(it)
    state = s.state_dict()
    assert state["epoch"] == 4 and state["consumed"] == 5

    fresh = TrainBatchSampler(src, tgt, 300, seed=2)
    fresh.load_state_dict(state)
    fresh.set_epoch(4)  # Lightning calls set_epoch with the same epoch after restoring
    assert list(fresh) == full[5:]
    assert list(fresh) == full  # the skip applies once
    fresh.set_epoch(5)
    assert len(list(fresh)) == len(s)


def test_new_epoch_clears_a_pending_skip():
    src, tgt = lengths(300)
    s = TrainBatchSampler(src, tgt, 300, seed=2)
    s.load_state_dict({"epoch": 1, "consumed": 3})
    s.set_epoch(2)
    s2 = TrainBatchSampler(src, tgt, 300, seed=2)
    s2.set_epoch(2)
    assert list(s) == list(s2)


def test_used_count_is_the_resume_position_when_batches_are_prefetched():
    src, tgt = lengths(300)
    s = TrainBatchSampler(src, tgt, 300, seed=2)
    s.set_epoch(1)
    it = iter(s)
    for _ in range(5):  # handed out 5, the consumer used 3 (2 prefetched)
        next(it)
    for _ in range(3):
        s.mark_used()
    assert s.state_dict()["consumed"] == 5 and s.state_dict(used=True)["consumed"] == 3
    fresh = TrainBatchSampler(src, tgt, 300, seed=2)
    fresh.load_state_dict(s.state_dict(used=True))
    assert fresh.state_dict(used=True)["consumed"] == 3
    assert list(fresh) == list(s)[3:]
    assert fresh.state_dict(used=True)["consumed"] == 3  # nothing marked used in this pass yet
    s.set_epoch(2)
    assert s.state_dict(used=True) == {"epoch": 2, "consumed": 0, "seed": 2, "world_size": 1}


def test_eval_sorted_unshuffled_and_exactly_once_across_ranks():
    src, tgt = lengths(301, seed=9)
    single = list(EvalBatchSampler(src, tgt, 200))
    order = [i for b in single for i in b]
    assert sorted(order) == list(range(301))
    assert np.all(np.diff(src[order]) >= 0)
    assert single == list(EvalBatchSampler(src, tgt, 200))
    ranks = [list(EvalBatchSampler(src, tgt, 200, rank=r, world_size=3)) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1
    assert sorted(i for r in ranks for b in r for i in b) == list(range(301))
    for r in ranks:
        assert_budget(r, src, tgt, 200)


def test_invalid_rank():
    with pytest.raises(DataError, match="invalid rank 2 for world size 2"):
        TrainBatchSampler(np.array([1]), np.array([1]), 10, rank=2, world_size=2)


def test_decoding_batches_count_sources_only_and_keep_oversize_alone():
    src, _ = lengths(300, seed=4)
    src[7] = 500  # longer than the budget
    order = np.argsort(src, kind="stable")
    with pytest.raises(DataError, match="sentence 7"):
        chunk_by_budget(order, src, None, 200)
    batches = chunk_by_budget(order, src, None, 200, oversize_alone=True)
    assert sorted(np.concatenate(batches).tolist()) == list(range(300))
    assert [b.tolist() for b in batches if 7 in b] == [[7]]
    assert_budget([b for b in batches if 7 not in b], src, src, 200)


def test_padding_keeps_rows_and_marks_padding():
    from nmt.data.batch import collate_pairs, pad_rows

    rows = [[5, 6, 7], [8], [], [9, 10]]
    tokens, mask = pad_rows(rows, pad_id=0)
    assert tokens.shape == mask.shape == (4, 3) and tokens.dtype.is_floating_point is False
    for r, row in enumerate(rows):
        assert tokens[r][~mask[r]].tolist() == row and (tokens[r][mask[r]] == 0).all()
    batch = collate_pairs([[5, 6], [7]], [[8], [9, 10, 11]], [4, 2], pad_id=0, bos_id=1, eos_id=2)
    assert batch.src.tolist() == [[5, 6, 2], [7, 2, 0]] and batch.src_padding_mask.tolist()[1] == [False, False, True]
    assert batch.tgt_in.tolist() == [[1, 8, 0, 0], [1, 9, 10, 11]]
    assert batch.tgt_out.tolist() == [[8, 2, 0, 0], [9, 10, 11, 2]]
    assert batch.ids.tolist() == [4, 2] and (batch.n_src_tokens, batch.n_tgt_tokens) == (5, 6)
    assert (batch.tgt_padding_mask == (batch.tgt_out == 0)).all()
