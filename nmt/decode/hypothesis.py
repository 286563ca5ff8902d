"""A decoded hypothesis and the GNMT length penalty used to rank hypotheses."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Hypothesis:
    """One output sentence.

    ``tokens`` excludes bos and eos. ``logprob`` is the model log-probability of the scored
    predictions: every token, plus the final eos when ``finished`` (ended by eos rather than cut at
    the maximum length). ``score`` is ``logprob / length_penalty(n, alpha)`` with ``n`` the number of
    scored predictions (``len(tokens) + finished``); hypotheses are ranked by ``score``.
    """

    tokens: list[int]
    score: float
    logprob: float
    finished: bool

    @property
    def num_predictions(self) -> int:
        """Predictions that ``logprob`` sums over (tokens, plus eos when finished)."""
        return len(self.tokens) + int(self.finished)


def length_penalty(length: float | Tensor, alpha: float) -> float | Tensor:
    """GNMT length penalty ``((5 + length) / 6) ** alpha`` (Wu et al. 2016); 1 when alpha = 0."""
    if isinstance(length, Tensor):
        return ((5.0 + length.to(torch.float32)) / 6.0) ** alpha
    return ((5.0 + float(length)) / 6.0) ** alpha


def max_lengths(src_lengths: Tensor, a: float, b: int, cap: int) -> Tensor:
    """Per-sentence output length limits ``min(cap, max(1, floor(a * S + b)))``, ``S`` the true
    source length (B,) -> (B,) long."""
    limit = torch.floor(src_lengths.to(torch.float64) * a + b).long()
    return limit.clamp(min=1, max=cap)
