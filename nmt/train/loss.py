"""Label-smoothed cross-entropy over non-padding target tokens."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class LossOutput(NamedTuple):
    loss: Tensor  # label-smoothed loss, mean over counted tokens (what is optimised)
    nll: Tensor  # plain negative log-likelihood, mean over counted tokens (perplexity = exp(nll))
    ntokens: int


def label_smoothed_nll(logits: Tensor, target: Tensor, epsilon: float) -> LossOutput:
    """Loss for logits (N, V) of the N non-padding positions and their targets (N,).

    loss = (1 - eps) * nll + eps * mean_v(-log p_v): the same as
    ``F.cross_entropy(..., label_smoothing=eps)``, with the plain NLL from the same log-softmax.
    """
    # half precision is computed in float32; float32 and float64 as they are
    lprobs = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)  # (N, V)
    nll = -lprobs.gather(-1, target[:, None]).squeeze(-1)  # (N,)
    nll_mean = nll.mean()
    if epsilon > 0:
        smooth = -lprobs.mean(dim=-1)  # (N,)
        loss = (1.0 - epsilon) * nll_mean + epsilon * smooth.mean()
    else:
        loss = nll_mean
    return LossOutput(loss, nll_mean.detach(), int(target.numel()))
