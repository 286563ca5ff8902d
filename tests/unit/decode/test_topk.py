"""Block-wise top-k: the same entries as torch.topk, for any scores (ties, -inf, narrow rows)."""

from __future__ import annotations

import pytest
import torch

from nmt.decode.topk import block_size, topk_rows


@pytest.mark.parametrize("seed", range(5))
def test_distinct_scores_give_exactly_torch_topk(seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(7, 5 * 640, generator=g)
    scores[:, 640:1280] += 3.0  # the best entries crowd into one hypothesis's blocks
    scores[0, 2000:] = -float("inf")  # and some rows are mostly masked
    assert block_size(scores.size(1), 10) is not None  # the block path is what is tested
    values, columns = topk_rows(scores, 10)
    expected = scores.topk(10, dim=1)
    assert torch.equal(values, expected.values) and torch.equal(columns, expected.indices)


def test_ties_and_minus_infinity_keep_the_values_and_point_at_them():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 3, (6, 4096), generator=g).float()  # massive ties
    scores[1] = -float("inf")
    scores[1, 5] = 0.0  # one finite entry; the rest of its top-k are -inf
    values, columns = topk_rows(scores, 8)
    assert torch.equal(values, scores.topk(8, dim=1).values)
    assert torch.equal(scores.gather(1, columns), values)
    assert all(len(set(row)) == 8 for row in columns.tolist())  # distinct entries
    assert values[1, 0] == 0.0 and columns[1, 0] == 5


def test_rows_without_a_fitting_block_size_fall_back_to_torch_topk():
    scores = torch.randn(3, 997)  # prime width
    assert block_size(997, 4) is None and block_size(64 * 4, 4) is None  # and too narrow for blocks
    values, columns = topk_rows(scores, 4)
    assert torch.equal(values, scores.topk(4, dim=1).values) and torch.equal(columns, scores.topk(4, dim=1).indices)
