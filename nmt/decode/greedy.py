"""Greedy search (and the shared one-hypothesis-per-row loop that sampling reuses).

Each step feeds the last token of every live row, masks pad and bos (always, unless bos is eos) and
eos (before ``min_len``), and picks the next token: the argmax, or whatever ``pick`` chooses. A row ends at
eos or at its length limit (without eos); ended rows leave the batch through ``reorder_state``.
Scores use the same GNMT length penalty as beam search, so beam 1 and greedy agree exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from nmt.decode.hypothesis import Hypothesis, length_penalty
from nmt.decode.protocol import Seq2Seq
from nmt.decode.topk import topk_rows

# Chooses the next token per row from masked model log-probs (N, V) -> (N,) long.
TokenPicker = Callable[[Tensor], Tensor]


def greedy_search(
    model: Seq2Seq,
    state: Any,
    max_lens: Tensor,
    *,
    bos: int,
    eos: int,
    pad: int,
    alpha: float = 0.6,
    min_len: int = 0,
    pick: TokenPicker | None = None,
) -> list[Hypothesis]:
    """Decode one hypothesis per row of a fresh ``state`` (batch N) with per-row length limits
    ``max_lens`` (N,); ``pick`` replaces the argmax (sampling)."""
    device = max_lens.device
    N = max_lens.numel()
    live = torch.arange(N, device=device)  # (n,) original row ids
    limits = max_lens.to(device=device, dtype=torch.long).clone()  # (n,)
    last = torch.full((N,), bos, dtype=torch.long, device=device)  # (n,)
    logprob = torch.zeros(N, device=device)  # (n,)
    history = torch.empty((N, 0), dtype=torch.long, device=device)  # (n, t)
    results: list[Hypothesis | None] = [None] * N

    for t in range(int(limits.max()) if N else 0):
        logits, state = model.step(last, state)  # (n, V)
        lprobs = torch.log_softmax(logits.float(), dim=-1)
        lprobs[:, pad] = -float("inf")
        if bos != eos:
            lprobs[:, bos] = -float("inf")
        if t < min_len:
            lprobs[:, eos] = -float("inf")
        if pick is None:
            best, tok = (x.squeeze(1) for x in topk_rows(lprobs, 1))  # (n,) each: by blocks, as beam search
        else:
            tok = pick(lprobs)  # (n,)
            best = lprobs.gather(1, tok.unsqueeze(1)).squeeze(1)
        logprob = logprob + best
        history = torch.cat([history, tok.unsqueeze(1)], dim=1)
        done = (tok == eos) | (limits == t + 1)  # (n,)
        if not bool(done.any()):
            last = tok
            continue
        idx = done.nonzero().squeeze(1)
        penalty = length_penalty(t + 1, alpha)
        for rid, seq, logp in zip(live[idx].tolist(), history[idx].tolist(), logprob[idx].tolist()):
            by_eos = seq[-1] == eos
            results[rid] = Hypothesis(seq[:-1] if by_eos else seq, logp / penalty, logp, by_eos)
        keep = (~done).nonzero().squeeze(1)  # (n',)
        if keep.numel() == 0:
            break
        state = model.reorder_state(state, keep, keep)
        live, limits, logprob, history, last = (
            live[keep],
            limits[keep],
            logprob[keep],
            history[keep],
            tok[keep],
        )

    assert all(h is not None for h in results), "every row ends at eos or at its length limit"
    return results  # type: ignore[return-value]
