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
        src_len = sp.src_len[idx] + 1  # (B,) with eos
        tgt_len = sp.tgt_len[idx] + 1  # (B,) with eos / bos
        B, S, T = len(idx), int(src_len.max()), int(tgt_len.max())
        src = np.full((B, S), self.pad_id, dtype=np.int64)
        tgt_in = np.full((B, T), self.pad_id, dtype=np.int64)
        tgt_out = np.full((B, T), self.pad_id, dtype=np.int64)
        for b, i in enumerate(idx.tolist()):
            s, t = sp.src(i), sp.tgt(i)
            src[b, :len(s)] = s
            src[b, len(s)] = self.eos_id
            tgt_in[b, 0] = self.bos_id
            tgt_in[b, 1:len(t) + 1] = t
            tgt_out[b, :len(t)] = t
            tgt_out[b, len(t)] = self.eos_id
        src_mask = np.arange(S)[None, :] >= src_len[:, None]  # (B, S)
        tgt_mask = np.arange(T)[None, :] >= tgt_len[:, None]  # (B, T)
        return Batch(
            src=torch.from_numpy(src), src_padding_mask=torch.from_numpy(src_mask),
            tgt_in=torch.from_numpy(tgt_in), tgt_out=torch.from_numpy(tgt_out),
            tgt_padding_mask=torch.from_numpy(tgt_mask), ids=torch.from_numpy(idx),
            n_src_tokens=int(src_len.sum()), n_tgt_tokens=int(tgt_len.sum()),
        )


def unwrap(batch: Batch) -> Batch:
    """``collate_fn`` for ``PairDataset``: the dataset already returned a whole Batch."""
    return batch
