"""Fixed sinusoidal position encodings (Vaswani et al. 2017).

``sinusoidal_table`` encodes any integer or real positions, including negative relative offsets
``k - q`` (factored attention's R); ``SinusoidalPositions`` is a cached table of absolute positions
that can start at an offset (incremental decoding feeds one position at a time).

Layout (interleaved, as in the paper), for channel pairs i = 0 .. ceil(dim/2) - 1::

    PE[p, 2i]   = sin(p / 10000^(2i/dim))
    PE[p, 2i+1] = cos(p / 10000^(2i/dim))

An odd ``dim`` drops the last cosine channel.

``estimated_target_length`` is the one target length that cross-attention reference points use
(aligned offsets of factored attention, deformable attention and convolution).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_table(positions: Tensor, dim: int, dtype: torch.dtype | None = None) -> Tensor:
    """Encode ``positions`` (any shape, int or float, negative allowed) -> ``(*positions.shape, dim)``.

    ``dtype`` defaults to the positions' dtype if floating, else float32.
    """
    if dim <= 0:
        raise ValueError(f"sinusoidal_table: dim must be positive, got {dim}")
    if dtype is None:
        dtype = positions.dtype if positions.is_floating_point() else torch.float32
    # Computed in float64 so that large positions keep their phase exactly, then cast.
    pos = positions.to(torch.float64).unsqueeze(-1)  # (..., 1)
    n_pairs = (dim + 1) // 2
    inv_freq = torch.exp(
        torch.arange(n_pairs, dtype=torch.float64, device=positions.device) * (-2.0 * math.log(10000.0) / dim)
    )  # (n_pairs,)
    angles = pos * inv_freq  # (..., n_pairs)
    table = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)  # (..., 2 * n_pairs)
    return table[..., :dim].to(dtype)


class SinusoidalPositions(nn.Module):
    """Absolute sinusoidal encodings from a cached table; longer requests are computed on the fly."""

    table: Tensor

    def __init__(self, dim: int, max_len: int = 1024) -> None:
        super().__init__()
        self.dim = dim
        # Not persistent: it is a pure function of (dim, max_len), so checkpoints need not carry it.
        self.register_buffer("table", sinusoidal_table(torch.arange(max_len), dim), persistent=False)

    def forward(self, length: int, offset: int = 0) -> Tensor:
        """Encodings of positions ``offset .. offset + length - 1`` -> ``(length, dim)``."""
        end = offset + length
        if offset >= 0 and end <= self.table.size(0):
            return self.table[offset:end]
        positions = torch.arange(offset, end, device=self.table.device)
        return sinusoidal_table(positions, self.dim, dtype=self.table.dtype)


def estimated_target_length(src_len: Tensor, ratio: float) -> Tensor:
    """T_hat = max(1, round(ratio * S)) per row (B,) -> long (B,): a target length that does not peek
    at the target. Halves round up (S=3, ratio=1.5 -> 5), the same for every mechanism."""
    return (src_len.to(torch.float64) * ratio + 0.5).floor().long().clamp(min=1)
