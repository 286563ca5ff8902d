"""Dynamic convolution (Wu et al. 2019): the kernel of each position is predicted from its content.

    w_t = DropConnect(softmax_K(h_t W_k))      W_k: (D, H*K), no bias (as fairseq's weight_linear)
    y_t = sum_k w_t[h(c), k] * h[t + k - left, c]

``h_t`` is the convolution's own input (after the input projection and GLU, padding zeroed): this
is fairseq's ``DynamicConv1dTBC(x, query=None)`` where ``query`` defaults to that input ``x``.
Input projection, padding and output projection as in ``nmt.modules.conv_common``.
Spec: ``dynamic[:k=..,heads=..,glu=..,dropconnect=..,impl=auto|unfold|band]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from nmt.modules.base import linear_flops, softmax_flops
from nmt.modules.conv_common import ConvMixer, ConvOptions
from nmt.modules.options import BuildContext, register


@register("dynamic", roles=("encoder", "decoder"), order_aware=True,
          examples=("dynamic:k=2", "dynamic:k=3", "dynamic:k=3,glu=false,impl=band", "dynamic:k=4,heads=1"))
@dataclass(frozen=True)
class DynamicOptions(ConvOptions):
    """Options of ``dynamic`` (see ``ConvOptions``)."""

    NAME = "dynamic"

    def build(self, ctx: BuildContext) -> DynamicConv:
        return DynamicConv(ctx, self)


class DynamicConv(ConvMixer):
    """Depthwise convolution whose per-head kernel is a linear function of the current position."""

    name = "dynamic"

    def __init__(self, ctx: BuildContext, options: DynamicOptions = DynamicOptions()) -> None:
        super().__init__(ctx, options)

    def init_kernel(self) -> None:
        self.kernel_proj = nn.Linear(self.d_model, self.heads * self.kernel_size, bias=False)
        nn.init.xavier_uniform_(self.kernel_proj.weight)

    def kernel_logits(self, h: Tensor) -> Tensor:
        B, T, _ = h.shape
        return self.kernel_proj(h).view(B, T, self.heads, self.kernel_size)  # (B, T, H, K)

    def kernel_flops(self, tgt_len: int) -> int:
        """Kernel prediction (D -> H*K per position) and a softmax over K per position and head."""
        predict = linear_flops(tgt_len, self.d_model, self.heads * self.kernel_size, bias=False)
        return predict + softmax_flops(tgt_len * self.heads, self.kernel_size)
