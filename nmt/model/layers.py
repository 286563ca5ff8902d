"""Encoder and decoder layers. Each receives its mixers ready-built (dependency injection): a layer
never knows which mechanism it holds, only the ``Mixer`` contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import Tensor, nn

from nmt.modules.base import Mixer, State


class FeedForward(nn.Module):
    """Position-wise FFN: Linear -> activation -> dropout -> Linear."""

    def __init__(self, d_model: int, d_ff: int, activation: str, activation_dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.act = nn.ReLU() if activation == "relu" else nn.GELU()
        self.drop = nn.Dropout(activation_dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.fc1(x))  # (B, T, F)
        return self.fc2(self.drop(h) if self.training else h)  # (B, T, D)

    def flops(self, n: int) -> int:
        d, f = self.fc1.in_features, self.fc1.out_features
        return n * (2 * d * f + f + 2 * f * d + d)


class Residual(nn.Module):
    """A sublayer wrapped with dropout, a residual connection and LayerNorm (pre- or post-norm).

    The LayerNorm has no bias unless ``norm_bias``: its output reaches the next attention query
    (directly in pre-norm, through the residual stream in post-norm), where a bias beta would be a
    free query bias U beta, i.e. extra E3/E4 terms under any mask (docs/attention.md)."""

    def __init__(self, d_model: int, dropout: float, pre_norm: bool, norm_bias: bool = False) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model, bias=norm_bias)
        self.drop = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def forward(self, x: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
        if self.pre_norm:
            return x + self._dropped(fn(self.norm(x)))
        return self.norm(x + self._dropped(fn(x)))

    def step(self, x: Tensor, fn: Callable[[Tensor], tuple[Tensor, Any]]) -> tuple[Tensor, Any]:
        """Like ``forward`` for a sublayer that also returns a new decoding state."""
        if self.pre_norm:
            y, state = fn(self.norm(x))
            return x + self._dropped(y), state
        y, state = fn(x)
        return self.norm(x + self._dropped(y)), state

    def _dropped(self, y: Tensor) -> Tensor:
        """Dropout when training; in eval mode ``y`` itself, without the call (decoding runs it per step)."""
        return self.drop(y) if self.training else y


class EncoderLayer(nn.Module):
    """[self-mixing] + FFN; ``self_mixer`` None means the sublayer is removed ("w/o")."""

    def __init__(self, self_mixer: Mixer | None, ffn: FeedForward, d_model: int, dropout: float, pre_norm: bool,
                 norm_bias: bool = False):
        super().__init__()
        self.self_mixer = self_mixer
        self.self_res = Residual(d_model, dropout, pre_norm, norm_bias) if self_mixer is not None else None
        self.ffn = ffn
        self.ffn_res = Residual(d_model, dropout, pre_norm, norm_bias)

    def forward(self, x: Tensor, padding_mask: Tensor | None, real: Tensor | None = None) -> Tensor:
        """``x`` (B, S, D); ``real`` (N,), optional: the flat indices of the non-padding positions
        (``real_positions``), so that the FFN sublayer skips padding. Padding positions then keep
        the FFN sublayer's input: finite values that every mixer masks."""
        if self.self_mixer is not None:
            x = self.self_res(x, lambda h: self.self_mixer(h, padding_mask=padding_mask))
        if real is None:
            return self.ffn_res(x, self.ffn)  # (B, S, D)
        flat = x.reshape(-1, x.size(-1))  # (B*S, D)
        out = self.ffn_res(flat.index_select(0, real), self.ffn)  # (N, D)
        return flat.index_copy(0, real, out).view_as(x)


def real_positions(padding_mask: Tensor | None) -> Tensor | None:
    """Flat indices (N,) of the non-padding positions of a (B, S) mask; None when nothing is padding."""
    if padding_mask is None or not bool(padding_mask.any()):
        return None
    return (~padding_mask).flatten().nonzero().squeeze(1)


@dataclass(eq=False)
class LayerState:
    """A decoder layer's decoding state: its self mixer's (one row per hypothesis) and its cross
    mixer's (one row per source sentence; ``Transformer.reorder_state`` moves each by its own index).
    None: a mixer that has not stepped yet (or a removed self sublayer)."""

    self_mixer: State | None = None
    cross_mixer: State | None = None


class DecoderLayer(nn.Module):
    """[causal self-mixing] + cross-mixing over the encoder output + FFN."""

    def __init__(
        self,
        self_mixer: Mixer | None,
        cross_mixer: Mixer,
        ffn: FeedForward,
        d_model: int,
        dropout: float,
        pre_norm: bool,
        norm_bias: bool = False,
    ) -> None:
        super().__init__()
        self.self_mixer = self_mixer
        self.self_res = Residual(d_model, dropout, pre_norm, norm_bias) if self_mixer is not None else None
        self.cross_mixer = cross_mixer
        self.cross_res = Residual(d_model, dropout, pre_norm, norm_bias)
        self.ffn = ffn
        self.ffn_res = Residual(d_model, dropout, pre_norm, norm_bias)

    def forward(
        self, x: Tensor, memory: Tensor, memory_padding_mask: Tensor | None
    ) -> Tensor:
        """Right-padded targets (B, T, D): causal self-mixing needs no target padding mask."""
        if self.self_mixer is not None:
            x = self.self_res(x, self.self_mixer)
        x = self.cross_res(
            x, lambda h: self.cross_mixer(h, memory=memory, memory_padding_mask=memory_padding_mask)
        )
        return self.ffn_res(x, self.ffn)  # (B, T, D)

    def step(
        self, x_t: Tensor, state: LayerState, memory: Tensor, memory_padding_mask: Tensor | None
    ) -> tuple[Tensor, LayerState]:
        """One incremental step: ``x_t`` (N, 1, D), N = B x n rows where each of the B sentences of
        ``memory`` (B, S, D) owns n consecutive rows (its hypotheses); ``state`` holds the self and
        cross mixer states. Cross-mixing sees each sentence's n rows as n queries at one position,
        so it reads the sentence's memory once instead of once per hypothesis."""
        self_state = None
        if self.self_mixer is not None:
            x_t, self_state = self.self_res.step(x_t, lambda h: self.self_mixer.step(h, state.self_mixer))

        def cross(h: Tensor) -> tuple[Tensor, State]:
            N, _, D = h.shape
            B = memory.size(0)
            y, s = self.cross_mixer.step(  # (B, n, D)
                h.view(B, N // B, D), state.cross_mixer, memory=memory, memory_padding_mask=memory_padding_mask
            )
            return y.reshape(N, 1, D), s

        x_t, cross_state = self.cross_res.step(x_t, cross)
        return self.ffn_res(x_t, self.ffn), LayerState(self_state, cross_state)
