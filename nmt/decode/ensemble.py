"""An ensemble of models behind the same ``Seq2Seq`` contract.

Each member keeps its own memory and decoder state; ``step`` combines the members' next-token
distributions and returns normalised log-probabilities as logits (the decoders' log-softmax
leaves them unchanged). ``"linear"`` averages probabilities, ``log(mean_m p_m)`` (fairseq's
ensemble); ``"log_linear"`` averages log-probabilities and renormalises (a product of experts).
The members must share the target vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from nmt.decode.protocol import Seq2Seq


class EnsembleModel:
    """Averages the next-token distributions of ``models`` (all with the same vocabulary)."""

    def __init__(self, models: Sequence[Seq2Seq], mode: Literal["linear", "log_linear"] = "linear") -> None:
        if not models:
            raise ValueError("EnsembleModel needs at least one model")
        if mode not in ("linear", "log_linear"):
            raise ValueError(f"ensemble mode must be 'linear' or 'log_linear', got {mode!r}")
        self.models = list(models)
        self.mode = mode

    def encode(self, src: Tensor, src_padding_mask: Tensor) -> list[Tensor]:  # type: ignore[override]
        """One memory per member (members may differ in width)."""
        return [m.encode(src, src_padding_mask) for m in self.models]

    def init_state(self, memory: list[Tensor], memory_padding_mask: Tensor) -> list[Any]:
        return [m.init_state(mem, memory_padding_mask) for m, mem in zip(self.models, memory)]

    def step(self, tokens: Tensor, state: list[Any]) -> tuple[Tensor, list[Any]]:
        lprobs, new_state = [], []
        for model, s in zip(self.models, state):
            logits, s = model.step(tokens, s)  # (B, V)
            lprobs.append(torch.log_softmax(logits.float(), dim=-1))
            new_state.append(s)
        stacked = torch.stack(lprobs)  # (M, B, V)
        if self.mode == "linear":
            combined = torch.logsumexp(stacked, dim=0) - math.log(len(self.models))
        else:
            combined = torch.log_softmax(stacked.mean(dim=0), dim=-1)
        return combined, new_state  # (B, V)

    def reorder_state(self, state: list[Any], index: Tensor, sources: Tensor | None) -> list[Any]:
        return [m.reorder_state(s, index, sources) for m, s in zip(self.models, state)]
