"""A mechanism of your own in one file: every position reads the mean of the positions it may see.

    nmt fit --config configs/multi30k_small.yaml --model.plugins examples/plugins/prefix_mean.py \
        --model.encoder_self prefix_mean
    nmt translate --plugins examples/plugins/prefix_mean.py --checkpoint runs/.../last.ckpt

docs/extending.md walks through it; ``nmt.modules.contract.check_mechanism("prefix_mean")`` checks it.
"""

from dataclasses import dataclass

import torch
from torch import nn

from nmt.modules import BuildContext, MechanismOptions, Mixer, linear_flops, register


@register("prefix_mean")  # every role; sees no word order by itself
@dataclass(frozen=True)
class PrefixMeanOptions(MechanismOptions):
    def build(self, ctx: BuildContext) -> Mixer:
        return PrefixMean(ctx.d_model, ctx.role)


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
        if self.role == "cross":
            return self.forward(x_t, memory=memory, memory_padding_mask=memory_padding_mask), state
        total = self.value(x_t) + state.get("sum", 0)  # (B, 1, D); state tensors follow beam reorders
        n = state.get("t", 0) + 1  # an int: the same for every row
        return total / n, {"sum": total, "t": n}

    def flops(self, tgt_len, src_len=None):
        keys = src_len or tgt_len
        return linear_flops(keys, self.d_model, self.d_model) + 2 * keys * self.d_model
