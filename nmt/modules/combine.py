"""Combinations of mechanisms in one sublayer: parallel (summed) or stacked (sequential).

- ``ParallelMixer`` ("0010+deformable"): every branch reads the same input; outputs are summed,
  y = sum_i M_i(x). Each branch has its own output projection, so the sum is a learned mixture.
- ``StackedMixer`` ("deformable>0010"): y = M_n(...M_2(M_1(x))), as the paper's image models place
  deformable convolution and an attention module one after the other inside a block.

Both keep one sub-state per branch for incremental decoding.
"""

from __future__ import annotations

from torch import Tensor, nn

from nmt.modules.base import Mixer, State


class _Combined(Mixer):
    def __init__(self, mixers: list[Mixer]) -> None:
        roles = {m.role for m in mixers}
        if len(roles) != 1:
            raise ValueError(f"combined mechanisms must share one role, got {sorted(roles)}")
        super().__init__(mixers[0].d_model, mixers[0].role)
        self.branches = nn.ModuleList(mixers)

    def flops(self, tgt_len: int, src_len: int | None = None) -> int:
        return sum(m.flops(tgt_len, src_len) for m in self.branches)

    def shared_flops(self, tgt_len: int, src_len: int | None = None) -> int:
        return sum(m.shared_flops(tgt_len, src_len) for m in self.branches)

    @staticmethod
    def _split(state: State, i: int) -> State:
        prefix = f"{i}."
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    @staticmethod
    def _merge(states: list[State]) -> State:
        return {f"{i}.{k}": v for i, s in enumerate(states) for k, v in s.items()}


class ParallelMixer(_Combined):
    """Sum of parallel branches over the same input."""

    def forward(self, x: Tensor, *, padding_mask=None, memory=None, memory_padding_mask=None) -> Tensor:
        out = None
        for m in self.branches:
            y = m(x, padding_mask=padding_mask, memory=memory, memory_padding_mask=memory_padding_mask)
            out = y if out is None else out + y
        return out

    def step(self, x_t: Tensor, state: State, *, memory=None, memory_padding_mask=None):
        out, states = None, []
        for i, m in enumerate(self.branches):
            y, s = m.step(x_t, self._split(state, i), memory=memory, memory_padding_mask=memory_padding_mask)
            out = y if out is None else out + y
            states.append(s)
        return out, self._merge(states)


class StackedMixer(_Combined):
    """Branches applied one after the other."""

    def forward(self, x: Tensor, *, padding_mask=None, memory=None, memory_padding_mask=None) -> Tensor:
        for m in self.branches:
            x = m(x, padding_mask=padding_mask, memory=memory, memory_padding_mask=memory_padding_mask)
        return x

    def step(self, x_t: Tensor, state: State, *, memory=None, memory_padding_mask=None):
        states = []
        for i, m in enumerate(self.branches):
            x_t, s = m.step(x_t, self._split(state, i), memory=memory, memory_padding_mask=memory_padding_mask)
            states.append(s)
        return x_t, self._merge(states)
