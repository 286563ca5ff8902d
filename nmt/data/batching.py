"""Token-budget batch samplers: bucketed, seeded and resumable for training, sorted for evaluation.

A batch's cost is counted with padding: ``n_sentences * longest`` must be <= ``max_tokens`` on the
source side AND on the target side (lengths include ``</s>``). For DDP every rank gets disjoint
batches and the same number of them: when the batch count is not a multiple of ``world_size``, the
largest batches (most sentences, first in order on ties) are split in two until it is; ``n_split``
counts those splits. No sentence is dropped or repeated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from nmt.data.errors import DataError

log = logging.getLogger(__name__)


def chunk_by_budget(order: np.ndarray, src_len: np.ndarray, tgt_len: np.ndarray | None,
                    max_tokens: int, max_sentences: int = 0, oversize_alone: bool = False) -> list[np.ndarray]:
    """Greedy batches along ``order``: a sentence joins the current batch unless the padded size would
    exceed ``max_tokens`` on either side (or ``max_sentences``). Lengths include ``</s>``;
    ``tgt_len`` None: sources only (decoding). A sentence longer than ``max_tokens`` is a DataError,
    or with ``oversize_alone`` a batch of its own."""
    if max_tokens <= 0:
        raise DataError(f"data.batch.max_tokens must be > 0, got {max_tokens}")
    cap = max_sentences if max_sentences > 0 else len(order) + 1
    batches: list[np.ndarray] = []
    start, n, max_s, max_t = 0, 0, 0, 0
    sl = src_len[order].tolist()
    tl = sl if tgt_len is None else tgt_len[order].tolist()
    for k, (s, t) in enumerate(zip(sl, tl)):
        if (s > max_tokens or t > max_tokens) and not oversize_alone:
            raise DataError(f"sentence {int(order[k])} has {s} source / {t} target tokens (with </s>), more than"
                            f" data.batch.max_tokens={max_tokens}; raise it or lower data.filter.max_len")
        ms, mt = max(max_s, s), max(max_t, t)
        if n and ((n + 1) * ms > max_tokens or (n + 1) * mt > max_tokens or n + 1 > cap):
            batches.append(order[start:k])
            start, n, ms, mt = k, 0, s, t
        n, max_s, max_t = n + 1, ms, mt
    if n:
        batches.append(order[start:])
    return batches


def split_to_multiple(batches: list[np.ndarray], world_size: int) -> tuple[list[np.ndarray], int]:
    """Split the largest batches in two (halves stay in place) until ``len % world_size == 0``."""
    batches = list(batches)
    n_split = 0
    while len(batches) % world_size:
        sizes = np.array([len(b) for b in batches])
        i = int(np.argmax(sizes))  # first of the largest
        if sizes[i] < 2:
            raise DataError(f"cannot give {world_size} ranks the same number of batches: only"
                            f" {int(sizes.sum())} sentences")
        half = (len(batches[i]) + 1) // 2
        batches[i:i + 1] = [batches[i][:half], batches[i][half:]]
        n_split += 1
    return batches, n_split


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise DataError(f"invalid rank {rank} for world size {world_size}")


class TrainBatchSampler:
    """Shuffled token-budget batches of one rank; a new seeded order every epoch; resumable mid-epoch.

    Order of an epoch (seeded by ``(seed, epoch)``, identical on every rank): with bucketing, sort by
    (target length, source length, random tie-break), chunk, shuffle the batches; without, shuffle the
    sentences and chunk. Then split to a multiple of ``world_size``; rank r takes batches r, r+W, ...
    """

    def __init__(self, src_len: np.ndarray, tgt_len: np.ndarray, max_tokens: int, max_sentences: int = 0,
                 seed: int = 0, bucketing: bool = True, rank: int = 0, world_size: int = 1):
        _check_rank(rank, world_size)
        self.src_len = np.asarray(src_len, dtype=np.int64)  # (N,) with </s>
        self.tgt_len = np.asarray(tgt_len, dtype=np.int64)  # (N,) with </s>
        if len(self.src_len) == 0:
            raise DataError("the training split is empty (after filtering)")
        self.max_tokens, self.max_sentences = max_tokens, max_sentences
        self.seed, self.bucketing = seed, bucketing
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.n_split = 0
        self._consumed = 0  # batches of the current epoch handed out (or skipped on resume)
        self._used = 0  # batches of the current epoch the consumer reported used (mark_used), skipped ones included
        self._skip = 0
        self._cache: tuple[int, list[np.ndarray]] | None = None

    @property
    def sampler(self) -> TrainBatchSampler:
        """Lightning calls ``loader.batch_sampler.sampler.set_epoch(epoch)``; that is this object."""
        return self

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration yields (a pending resume skip is kept for it)."""
        if epoch != self.epoch:
            self._skip = 0
            self._consumed = self._used = 0
        self.epoch = epoch

    def all_batches(self, epoch: int) -> list[np.ndarray]:
        """Every rank's batches of ``epoch``, in order, after splitting to a multiple of world_size."""
        rng = np.random.default_rng([self.seed, epoch])
        n = len(self.src_len)
        if self.bucketing:
            order = np.lexsort((rng.random(n), self.src_len, self.tgt_len))
            batches = chunk_by_budget(order, self.src_len, self.tgt_len, self.max_tokens, self.max_sentences)
            batches = [batches[i] for i in rng.permutation(len(batches))]
        else:
            order = rng.permutation(n)
            batches = chunk_by_budget(order, self.src_len, self.tgt_len, self.max_tokens, self.max_sentences)
        batches, self.n_split = split_to_multiple(batches, self.world_size)
        return batches

    def epoch_batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """This rank's batches of ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self.all_batches(epoch)[self.rank::self.world_size])
        return self._cache[1]

    def __len__(self) -> int:
        return len(self.epoch_batches())

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.epoch_batches()
        start, self._skip = self._skip, 0
        self._consumed = self._used = start
        for b in batches[start:]:
            self._consumed += 1
            yield b.tolist()

    def mark_used(self) -> None:
        """Count one batch of the current epoch as used: with prefetching, fewer than were handed out."""
        self._used += 1

    def state_dict(self, used: bool = False) -> dict:
        """Position to resume from: the epoch and the batches of it already taken (``used``: those
        reported by ``mark_used``, else those handed out)."""
        consumed = self._used if used else self._consumed
        return {"epoch": self.epoch, "consumed": consumed, "seed": self.seed, "world_size": self.world_size}

    def load_state_dict(self, state: dict) -> None:
        """Resume: the next iteration yields epoch ``state['epoch']`` from batch ``state['consumed']`` on."""
        if state.get("world_size", self.world_size) != self.world_size or state.get("seed", self.seed) != self.seed:
            log.warning("resuming the data order with a different world size or seed (%s); the order changes", state)
        self.epoch = int(state["epoch"])
        self._skip = self._consumed = self._used = int(state["consumed"])


class EvalBatchSampler:
    """Valid/test batches of one rank: sorted by (source, target) length, never shuffled; every
    sentence exactly once across ranks, every rank the same number of batches."""

    def __init__(self, src_len: np.ndarray, tgt_len: np.ndarray, max_tokens: int, max_sentences: int = 0,
                 rank: int = 0, world_size: int = 1):
        _check_rank(rank, world_size)
        src_len, tgt_len = np.asarray(src_len, dtype=np.int64), np.asarray(tgt_len, dtype=np.int64)
        order = np.lexsort((np.arange(len(src_len)), tgt_len, src_len))
        batches = chunk_by_budget(order, src_len, tgt_len, max_tokens, max_sentences)
        if world_size > 1 and batches:
            batches, self.n_split = split_to_multiple(batches, world_size)
        else:
            self.n_split = 0
        self.batches = batches[rank::world_size]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        for b in self.batches:
            yield b.tolist()
