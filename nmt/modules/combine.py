"""Combinations of mechanisms in one sublayer: parallel (summed) or stacked (sequential).

- ``ParallelMixer`` ("0010+deformable"): every branch reads the same input; outputs are summed,
  y = sum_i M_i(x). Each branch has its own output projection, so the sum is a learned mixture.
- ``StackedMixer`` ("deformable>0010"): y = M_n(...M_2(M_1(x))), as the paper's image models place
  deformable convolution and an attention module one after the other inside a block.

Both keep one sub-state per branch for incremental decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from nmt.modules.base import Mixer, MixerState


@dataclass(eq=False)
class CombinedState(MixerState):
    """The states of a combination's branches, in order (each reorders itself)."""

    parts: tuple[MixerState | None, ...] = ()


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

    def _parts(self, state: CombinedState | None) -> tuple[MixerState | None, ...]:
        return (None,) * len(self.branches) if state is None else state.parts


class ParallelMixer(_Combined):
    """Sum of parallel branches over the same input."""

    def forward(self, x: Tensor, *, padding_mask=None, memory=None, memory_padding_mask=None) -> Tensor:
        out = None
        for m in self.branches:
            y = m(x, padding_mask=padding_mask, memory=memory, memory_padding_mask=memory_padding_mask)
            out = y if out is None else out + y
        return out

    def step(self, x_t: Tensor, state: CombinedState | None, *, memory=None, memory_padding_mask=None):
        out, states = None, []
        for m, s in zip(self.branches, self._parts(state)):
            y, s = m.step(x_t, s, memory=memory, memory_padding_mask=memory_padding_mask)
            out = y if out is None else out + y
            states.append(s)
        return out, CombinedState(t=states[0].t, parts=tuple(states))


class StackedMixer(_Combined):
    """Branches applied one after the other."""

    def forward(self, x: Tensor, *, padding_mask=None, memory=None, memory_padding_mask=None) -> Tensor:
        for m in self.branches:
            x = m(x, padding_mask=padding_mask, memory=memory, memory_padding_mask=memory_padding_mask)
        return x

    def step(self, x_t: Tensor, state: CombinedState | None, *, memory=None, memory_padding_mask=None):
        states = []
        for m, s in zip(self.branches, self._parts(state)):
            x_t, s = m.step(x_t, s, memory=memory, memory_padding_mask=memory_padding_mask)
            states.append(s)
        return x_t, CombinedState(t=states[0].t, parts=tuple(states))
