"""A mechanism of your own in one file: every position reads the mean of the positions it may see.

    nmt fit --config configs/multi30k_small.yaml --model.plugins examples/plugins/prefix_mean.py \
        --model.encoder_self prefix_mean
    nmt translate --plugins examples/plugins/prefix_mean.py --checkpoint runs/.../last.ckpt

docs/extending.md walks through it; ``nmt.modules.contract.check_mechanism("prefix_mean")`` checks it.
"""

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nmt.modules import BuildContext, MechanismOptions, Mixer, MixerState, linear_flops, register


@register("prefix_mean")  # every role; sees no word order by itself
@dataclass(frozen=True)
class PrefixMeanOptions(MechanismOptions):
    def build(self, ctx: BuildContext) -> Mixer:
        return PrefixMean(ctx.d_model, ctx.role)


@dataclass(eq=False)
class PrefixMeanState(MixerState):  # t, the next position, comes from MixerState
    total: Tensor | None = None  # (B, 1, D) sum of the prefix's values; tensors follow beam reorders


class PrefixMean(Mixer):
    """y_t = mean of W x_k over the keys k that t may read: all real ones (encoder, cross) or k <= t (decoder)."""

    def __init__(self, d_model: int, role) -> None:
        super().__init__(d_model, role)
        self.value = nn.Linear(d_model, d_model)

    def forward(self, x, *, padding_mask=None, memory=None, memory_padding_mask=None):
        keys, pad = self.keys_of(x, padding_mask, memory, memory_padding_mask)  # (B, S, D), (B, S)
        keep = torch.ones_like(keys[..., :1]) if pad is None else (~pad).unsqueeze(-1).to(keys.dtype)  # (B, S, 1)
        v = self.value(keys) * keep  # (B, S, D), padding zeroed
        if self.role == "decoder":  # the prefix up to t
            return v.cumsum(1) / keep.cumsum(1)
        return (v.sum(1, keepdim=True) / keep.sum(1, keepdim=True)).expand_as(x)

    def step(self, x_t, state, *, memory=None, memory_padding_mask=None):
        state = state or PrefixMeanState()  # None: the first step
        if self.role == "cross":  # the memory's mean: nothing to keep but the position
            y = self.forward(x_t, memory=memory, memory_padding_mask=memory_padding_mask)
            return y, PrefixMeanState(t=state.t + 1)
        total = self.value(x_t) + (0 if state.total is None else state.total)  # (B, 1, D)
        return total / (state.t + 1), PrefixMeanState(t=state.t + 1, total=total)

    def flops(self, tgt_len, src_len=None):
        keys = src_len or tgt_len
        return linear_flops(keys, self.d_model, self.d_model) + 2 * keys * self.d_model
