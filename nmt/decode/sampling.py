"""Ancestral sampling: top-k, top-p (nucleus) and temperature, reproducible with a seed.

Sampling reuses the greedy loop with a token picker. The picker reads the model log-probs
(pad and early eos already masked), divides them by the temperature, keeps the top ``k`` tokens or
the smallest set whose probability reaches ``p``, and draws from what remains with a seeded
``torch.Generator``. Returned scores are the model's (untempered) length-penalised log-probs.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from nmt.decode.greedy import greedy_search
from nmt.decode.hypothesis import Hypothesis
from nmt.decode.protocol import Seq2Seq


class Sampler:
    """Token picker for ``greedy_search``: draws one token per row from filtered log-probs."""

    def __init__(
        self,
        method: Literal["topk", "topp"],
        *,
        k: int = 10,
        p: float = 0.9,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        if method not in ("topk", "topp"):
            raise ValueError(f"sampling method must be 'topk' or 'topp', got {method!r}")
        self.method, self.k, self.p, self.temperature, self.generator = method, k, p, temperature, generator

    def filter(self, lprobs: Tensor) -> Tensor:
        """Tempered log-probs (N, V) with the tokens outside the top-k / nucleus set to -inf."""
        logits = lprobs / self.temperature
        if self.method == "topk":
            kth = logits.topk(min(self.k, logits.size(-1)), dim=-1).values[:, -1:]  # (N, 1)
            return logits.masked_fill(logits < kth, -float("inf"))
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # (N, V)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # probability mass of the strictly better tokens
        sorted_logits = sorted_logits.masked_fill(before >= self.p, -float("inf"))  # best always kept
        return torch.full_like(logits, -float("inf")).scatter(1, order, sorted_logits)

    def __call__(self, lprobs: Tensor) -> Tensor:
        probs = self.filter(lprobs).softmax(dim=-1)  # (N, V)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(1)  # (N,)


def sample(
    model: Seq2Seq,
    state: Any,
    max_lens: Tensor,
    *,
    bos: int,
    eos: int,
    pad: int,
    method: Literal["topk", "topp"] = "topk",
    k: int = 10,
    p: float = 0.9,
    temperature: float = 1.0,
    seed: int = 0,
    nbest: int = 1,
    alpha: float = 0.6,
    min_len: int = 0,
) -> list[list[Hypothesis]]:
    """Draw ``nbest`` independent samples per sentence of a fresh ``state`` (batch B) ->
    per sentence, the samples sorted by score."""
    device = max_lens.device
    B = max_lens.numel()
    generator = torch.Generator(device=device).manual_seed(seed)
    picker = Sampler(method, k=k, p=p, temperature=temperature, generator=generator)
    expand = torch.arange(B, device=device).repeat_interleave(nbest)  # (B*nbest,)
    state = model.reorder_state(state, expand, expand)  # samples end at different steps: one source row each
    hyps = greedy_search(
        model, state, max_lens[expand], bos=bos, eos=eos, pad=pad, alpha=alpha, min_len=min_len, pick=picker
    )
    return [sorted(hyps[i * nbest : (i + 1) * nbest], key=lambda h: -h.score) for i in range(B)]
