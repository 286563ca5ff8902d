"""Lightweight convolution (Wu et al. 2019): one learned, softmax-normalised kernel for all positions.

    w = DropConnect(softmax_K(W))          W: (H, K) parameters, shared by the D/H channels of a head
    y_t = sum_k w[h(c), k] * h[t + k - left, c]

with the input projection / GLU, padding, and output projection of ``nmt.modules.conv_common``.
Spec: ``lightweight[:k=..,heads=..,glu=..,dropconnect=..,impl=auto|unfold|band]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nmt.modules.base import softmax_flops
from nmt.modules.conv_common import ConvMixer, ConvOptions
from nmt.modules.options import BuildContext, register


@register("lightweight", roles=("encoder", "decoder"), order_aware=True,
          examples=("lightweight:k=2", "lightweight:k=3", "lightweight:k=3,glu=false,impl=band", "lightweight:k=4,heads=1"))
@dataclass(frozen=True)
class LightweightOptions(ConvOptions):
    """Options of ``lightweight`` (see ``ConvOptions``)."""

    NAME = "lightweight"

    def build(self, ctx: BuildContext) -> LightweightConv:
        return LightweightConv(ctx, self)


class LightweightConv(ConvMixer):
    """Depthwise convolution with one position-independent kernel per head."""

    name = "lightweight"

    def __init__(self, ctx: BuildContext, options: LightweightOptions = LightweightOptions()) -> None:
        super().__init__(ctx, options)

    def init_kernel(self) -> None:
        self.weight = nn.Parameter(torch.empty(self.heads, self.kernel_size))  # (H, K)
        with torch.no_grad():  # fairseq initialises the (H, 1, K) conv weight with Xavier
            nn.init.xavier_uniform_(self.weight.view(self.heads, 1, self.kernel_size))

    def kernel_logits(self, h: Tensor) -> Tensor:
        return self.weight[None, None]  # (1, 1, H, K)

    def kernel_flops(self, tgt_len: int) -> int:
        """One softmax over K per head, shared by all positions."""
        return softmax_flops(self.heads, self.kernel_size)
