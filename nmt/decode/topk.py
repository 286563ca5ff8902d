"""The k largest entries per row of a wide score matrix, by blocks.

Beam search picks the ``2 * beam`` best of ``beam * V`` candidates per sentence at every step, greedy
search the best of V.
``torch.topk`` on CPU runs a selection over every entry; a maximum per block is a vectorised
reduction, and an entry among the k largest of its row lies in one of the k blocks with the largest
maxima (any other block's maximum is exceeded by k block maxima, hence by k entries), so the
selection only has to look at those k blocks: 0.5-0.7 ms instead of 1.6-1.9 ms for (32, 40000) on
a 2-vCPU Xeon, and for k = 1 faster than one ``max`` with indices, which is not vectorised
(``scripts/bench_kernels.py --only search``; docs/benchmarks.md).
"""

from __future__ import annotations

from torch import Tensor

BLOCK_SIZES = (64, 128, 32, 160, 200, 100, 50)  # tried in order (multiples of 16 floats first, measured faster)


def block_size(width: int, k: int) -> int | None:
    """The block size used for rows of ``width`` entries, None when blocks do not pay (no size in
    ``BLOCK_SIZES`` divides the width, or k blocks would be a large part of the row)."""
    for size in BLOCK_SIZES:
        if width % size == 0 and 8 * k * size <= width:
            return size
    return None


def topk_rows(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` largest entries of each row of ``scores`` (N, W), largest first, and their column
    indices: (N, k) each, as ``scores.topk(k, dim=1)`` (which of equal entries comes first may
    differ)."""
    N, W = scores.shape
    size = block_size(W, k)
    if size is None:
        return scores.topk(k, dim=1)
    blocks = scores.reshape(N, W // size, size)  # (N, nb, size)
    best = blocks.amax(dim=2).topk(k, dim=1).indices  # (N, k) blocks holding the k largest
    inside = blocks.gather(1, best.unsqueeze(2).expand(N, k, size))  # (N, k, size)
    values, pos = inside.view(N, k * size).topk(k, dim=1)  # (N, k)
    columns = best.gather(1, pos // size) * size + pos % size  # (N, k)
    return values, columns
