"""From sentence indices to a padded ``Batch`` of tensors.

Conventions: ``src`` = pieces(src) + [eos]; ``tgt_out`` (labels) = pieces(tgt) + [eos];
``tgt_in`` (decoder input) = [bos] + pieces(tgt). Right padding with the vocabulary's pad id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from nmt.data.binarized import EncodedSplit


@dataclass
class Batch:
    """A padded batch; masks are True at padding. Moves with ``.to(device)`` (Lightning calls it)."""

    src: torch.Tensor               # (B, S) long
    src_padding_mask: torch.Tensor  # (B, S) bool, True = pad
    tgt_in: torch.Tensor            # (B, T) long, starts with bos
    tgt_out: torch.Tensor           # (B, T) long, ends with eos
    tgt_padding_mask: torch.Tensor  # (B, T) bool, True = pad
    ids: torch.Tensor               # (B,) long, sentence index in the prepared split
    n_src_tokens: int               # non-pad source tokens (with eos)
    n_tgt_tokens: int               # non-pad target tokens (with eos)

    def __len__(self) -> int:
        return self.src.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor on ``device``."""
        return Batch(**{f.name: (v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v)
                        for f in fields(self) for v in [getattr(self, f.name)]})

    def pin_memory(self) -> Batch:
        """A copy in pinned memory (used by ``DataLoader(pin_memory=True)``)."""
        return Batch(**{f.name: (v.pin_memory() if isinstance(v, torch.Tensor) else v)
                        for f in fields(self) for v in [getattr(self, f.name)]})


class PairDataset(torch.utils.data.Dataset):
    """Map-style dataset over an encoded split; ``dataset[[i, j, ...]]`` is a whole ``Batch``.

    Used with a batch sampler and ``collate_fn=unwrap``: the batched ``__getitems__`` path builds the
    batch directly from the memory-mapped arrays.
    """

    def __init__(self, split: EncodedSplit, pad_id: int, bos_id: int, eos_id: int):
        self.split = split
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> Batch:
        return self.collate([i])

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        return self.collate(indices)

    def collate(self, indices: Sequence[int]) -> Batch:
        """The padded ``Batch`` of the given sentence indices, in that order."""
        sp = self.split
        idx = np.asarray(indices, dtype=np.int64)
        rows = idx.tolist()
        return collate_pairs([sp.src(i) for i in rows], [sp.tgt(i) for i in rows], idx,
                             self.pad_id, self.bos_id, self.eos_id)


def _padded(rows: Sequence[Sequence[int]], pad_id: int, first: int | None = None,
            last: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``[first] + row + [last]`` (each only when given) right-padded with ``pad_id``:
    tokens (B, L) int64 and lengths (B,) int64."""
    start, extra = int(first is not None), int(first is not None) + int(last is not None)
    lengths = np.fromiter((len(r) + extra for r in rows), dtype=np.int64, count=len(rows))  # (B,)
    out = np.full((len(rows), int(lengths.max(initial=0))), pad_id, dtype=np.int64)  # (B, L)
    for b, r in enumerate(rows):
        n = len(r)
        out[b, start:start + n] = r
        if first is not None:
            out[b, 0] = first
        if last is not None:
            out[b, start + n] = last
    return out, lengths


def _mask(lengths: np.ndarray, width: int) -> torch.Tensor:
    """(B, width) bool, True at padding."""
    return torch.from_numpy(np.arange(width)[None, :] >= lengths[:, None])


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows (already with their specials) right-padded: tokens (B, L) long and padding mask
    (B, L) bool (True at padding). The one padding path of sources for decoding."""
    tokens, lengths = _padded(rows, pad_id)
    return torch.from_numpy(tokens), _mask(lengths, tokens.shape[1])


def collate_pairs(src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]], ids: Sequence[int] | np.ndarray,
                  pad_id: int, bos_id: int, eos_id: int) -> Batch:
    """The padded ``Batch`` of (source, target) piece ids without specials, by the conventions above."""
    src_t, src_len = _padded(src, pad_id, last=eos_id)  # (B, S)
    tgt_in, tgt_len = _padded(tgt, pad_id, first=bos_id)  # (B, T)
    tgt_out, _ = _padded(tgt, pad_id, last=eos_id)  # (B, T)
    return Batch(
        src=torch.from_numpy(src_t), src_padding_mask=_mask(src_len, src_t.shape[1]),
        tgt_in=torch.from_numpy(tgt_in), tgt_out=torch.from_numpy(tgt_out),
        tgt_padding_mask=_mask(tgt_len, tgt_in.shape[1]), ids=torch.as_tensor(np.asarray(ids, dtype=np.int64)),
        n_src_tokens=int(src_len.sum()), n_tgt_tokens=int(tgt_len.sum()),
    )


def unwrap(batch: Batch) -> Batch:
    """``collate_fn`` for ``PairDataset``: the dataset already returned a whole Batch."""
    return batch
