"""Teacher-forced scoring of given outputs: the model log-probability of target token sequences.

Useful to rerank n-best lists and to check that a decoder's incremental bookkeeping is right (a
hypothesis re-scored from a fresh state must get the score the search reported).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from nmt.decode.protocol import Seq2Seq


@torch.inference_mode()
def sequence_logprobs(
    model: Seq2Seq,
    src: Tensor,
    src_padding_mask: Tensor,
    targets: Sequence[Sequence[int]],
    *,
    bos: int,
    eos: int,
    append_eos: bool | Sequence[bool] = True,
) -> Tensor:
    """Sum of log p(y_t | y_<t, x) over each target (without bos; eos appended where
    ``append_eos``), one target per source row -> (B,) float64."""
    B = src.size(0)
    if len(targets) != B:
        raise ValueError(f"got {len(targets)} targets for a batch of {B} sources")
    flags = [append_eos] * B if isinstance(append_eos, bool) else list(append_eos)
    seqs = [list(y) + ([eos] if f else []) for y, f in zip(targets, flags)]
    T = max((len(s) for s in seqs), default=0)
    device = src.device
    gold = torch.full((B, T), eos, dtype=torch.long, device=device)  # (B, T) predicted tokens
    valid = torch.zeros((B, T), dtype=torch.bool, device=device)
    for i, s in enumerate(seqs):
        gold[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        valid[i, : len(s)] = True
    inputs = torch.cat([torch.full((B, 1), bos, dtype=torch.long, device=device), gold[:, :-1]], dim=1)

    state = model.init_state(model.encode(src, src_padding_mask), src_padding_mask)
    total = torch.zeros(B, dtype=torch.float64, device=device)
    for t in range(T):
        logits, state = model.step(inputs[:, t], state)  # (B, V)
        lp = torch.log_softmax(logits.float(), dim=-1).gather(1, gold[:, t : t + 1]).squeeze(1)
        total += torch.where(valid[:, t], lp.double(), torch.zeros_like(total))
    return total
