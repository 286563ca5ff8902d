"""Inference: linear layers that read the same input, merged into one layer with their stacked
weights, so that one product serves all of them (``Mixer.fuse_projections``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def stack_linears(layers: Sequence[nn.Linear]) -> nn.Linear:
    """One ``nn.Linear`` whose output is the outputs of ``layers`` (same input width) side by side;
    a missing bias is stacked as zeros, which adds nothing. Draws no random numbers."""
    w = layers[0].weight
    d_in = layers[0].in_features
    widths = [m.out_features for m in layers]
    fused = torch.nn.utils.skip_init(nn.Linear, d_in, sum(widths), device=w.device, dtype=w.dtype)
    with torch.no_grad():  # part by part, without a concatenated temporary
        start = 0
        for m, width in zip(layers, widths):
            rows = slice(start, start + width)
            fused.weight[rows].copy_(m.weight)
            if m.bias is None:
                fused.bias[rows].zero_()
            else:
                fused.bias[rows].copy_(m.bias)
            start += width
    return fused
