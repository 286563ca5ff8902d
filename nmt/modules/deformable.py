"""1D deformable attention (Deformable DETR style; spec ``deform_attn``, alias ``deformable``).

Not the paper's deformable convolution (that is ``nmt.modules.deform_conv``): H heads x K points
share one value and one output projection and the points carry scalar, normalised weights.

For a query at position q with content z_q, head m reads K points of the projected values
v = W' x (split into H heads of d_head channels)::

    p_{m,k}   = r_q + p_k + delta_{m,k}(z_q)          delta = Linear(d -> H*K)(z_q), zero-initialised
    a_{m,k}   = norm_k(Linear(d -> H*K)(z_q))         softmax over the K points (default) or sigmoid
    y_{q,m}   = sum_k a_{m,k} * v_m(p_{m,k})
    y_q       = W [y_{q,1}; ...; y_{q,H}]

``v_m(p)`` is linear interpolation between the neighbouring integer positions
floor(p) and floor(p) + 1, with weights 1 - frac(p) and frac(p); a neighbour outside the sequence
or on padding reads zero. The regular grid p_k is centred for the encoder and the cross role
(-(K//2) .. K-1-K//2) and causal for the decoder (-(K-1) .. 0). Since the offsets start at zero,
a fresh module is a (per-head, content-weighted) convolution of width K.

Roles:

- ``encoder``: r_q = q over the source.
- ``decoder``: r_q = q over the target prefix; sampling positions are clamped to p <= q, and the
  upper neighbour floor(p) + 1 is dropped when it lies beyond q (its weight frac(p) is 0 there
  anyway), so nothing from the future leaks.
- ``cross`` (beyond the paper): target queries sample the encoder output around the reference
  point r_q = q * S / T_hat, where S is the row's true source length and
  T_hat = max(1, round(ratio * S)) a length estimate that does not look at the true target length
  (so r_q is about q / ratio). ``round`` is ``torch.round`` (half to even).

Option ``norm``: ``softmax`` (default; as Deformable DETR, the K weights of a head sum to one) or
``sigmoid`` (DCNv2 modulation, each weight in (0, 1) independently). Dropout acts on the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from nmt.modules.base import (
    Mixer,
    MixerState,
    TimeCache,
    extend_cache,
    linear_flops,
    masked_fill_padding,
    softmax_flops,
)
from nmt.modules.options import BuildContext, MechanismOptions, register
from nmt.modules.positions import estimated_target_length

NORMS: tuple[str, ...] = ("softmax", "sigmoid")


@register("deform_attn", aliases=("deformable",), order_aware=True,
          examples=("deform_attn", "deform_attn:k=3,norm=sigmoid", "deform_attn:ratio=1.5"))
@dataclass(frozen=True)
class DeformableOptions(MechanismOptions):
    """``deformable[:heads=H,k=K,norm=softmax|sigmoid,ratio=R]``; ``ratio`` is for the cross role only."""

    NAME = "deformable"
    heads: int | None = None  # None: the model's n_heads
    k: int = 4  # sampling points per head
    norm: Literal["softmax", "sigmoid"] = "softmax"
    ratio: float | None = None  # T_hat / S for the cross reference point; None = 1.0

    def __post_init__(self) -> None:
        if self.k < 1:
            self.fail(f"option k={self.k} must be >= 1")
        if self.norm not in NORMS:
            self.fail(f"option norm={self.norm!r} must be one of {', '.join(NORMS)}")
        if self.ratio is not None and not self.ratio > 0:
            self.fail(f"option ratio={self.ratio} must be positive")

    def check(self, ctx: BuildContext) -> None:
        self.resolve_heads(ctx, self.heads)
        if self.ratio is not None and ctx.role != "cross":
            self.fail(f"option ratio applies to the cross role only, not {ctx.role}")

    def build(self, ctx: BuildContext) -> Deformable:
        return Deformable(ctx, self)


def sampling_grid(k: int, causal: bool) -> list[int]:
    """The regular offsets p_k: -(K-1)..0 when causal, else centred -(K//2)..K-1-K//2."""
    start = -(k - 1) if causal else -(k // 2)
    return list(range(start, start + k))


def linear_neighbours(
    pos: Tensor, S: int, key_ok: Tensor | None, limit: Tensor | int | None
) -> tuple[Tensor, Tensor]:
    """The two integer neighbours of real positions ``pos`` (B, G, T, K) on a length-S axis and their
    linear interpolation weights -> (idx, coef), both (B, G, T, 2K): lower neighbours first, then
    upper ones. A neighbour outside [0, S), beyond ``limit`` (an int or broadcastable to pos), or
    not ``key_ok`` (B, S) gets weight 0 (its index is clamped into range)."""
    B = pos.shape[0]
    lo = pos.floor()
    frac = pos - lo  # (B, G, T, K)
    lo = lo.long()
    idx = torch.cat([lo, lo + 1], -1)  # (B, G, T, 2K)
    coef = torch.cat([1 - frac, frac], -1)  # (B, G, T, 2K)
    ok = (idx >= 0) & (idx < S)
    if limit is not None:
        ok = ok & (idx <= limit)
    idx = idx.clamp(0, S - 1)
    if key_ok is not None:
        ok = ok & key_ok.gather(1, idx.reshape(B, -1)).view_as(idx)
    return idx, coef * ok


def cross_reference(q: Tensor, src_len: Tensor, ratio: float, dtype: torch.dtype) -> Tensor:
    """r_q = q * S / T_hat for query positions ``q`` (T,) and source lengths (B,) -> (B, 1, T, 1)."""
    scale = src_len.to(torch.float64) / estimated_target_length(src_len, ratio).to(torch.float64)  # (B,)
    return (q.to(torch.float64)[None, :] * scale[:, None]).to(dtype)[:, None, :, None]


@dataclass(eq=False)
class DeformState(MixerState):
    """The decoding state of the deformable family (deform_attn, deform_conv, their joint forms with
    E3). Decoder: ``v`` (attention) or ``x`` (convolution), the prefix's values or inputs as
    ``TimeCache`` (B, ., t, .), and ``e3`` the prefix's E3 logits (joint forms). Cross, set on the
    first step: the memory's values ``v`` (B, H, S, dh) or zero-padded inputs ``x`` (B, 1, S, D),
    ``key_ok`` (B, S), ``src_len`` (B,), and ``e3`` the query-independent average (joint forms)."""

    v: TimeCache | Tensor | None = None
    x: TimeCache | Tensor | None = None
    e3: TimeCache | Tensor | None = None
    key_ok: Tensor | None = None
    src_len: Tensor | None = None


def source_keys(memory: Tensor, memory_padding_mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Which memory positions are real (B, S) bool, and each row's true length (B,)."""
    key_ok = torch.ones(memory.shape[:2], dtype=torch.bool, device=memory.device)
    if memory_padding_mask is not None:
        key_ok = ~memory_padding_mask
    return key_ok, source_lengths(memory, memory_padding_mask)


def source_lengths(memory: Tensor, memory_padding_mask: Tensor | None) -> Tensor:
    """True length of each memory row (B,)."""
    B, S, _ = memory.shape
    if memory_padding_mask is None:
        return torch.full((B,), S, device=memory.device)
    return (~memory_padding_mask).sum(1)


def reference_points(role: str, q: Tensor, keys: Tensor, key_pad: Tensor | None, ratio: float, dtype: torch.dtype) -> Tensor:
    """Reference point of each query (T,) on the key axis -> (B or 1, 1, T, 1): the query's own
    position for the self roles, ``cross_reference`` over the true source lengths for cross."""
    if role == "cross":
        return cross_reference(q, source_lengths(keys, key_pad), ratio, dtype)
    return q.to(dtype)[None, None, :, None]  # (1, 1, T, 1)


class Deformable(Mixer):
    """Per-head 1D deformable sampling with content-predicted offsets and point weights."""

    def __init__(self, ctx: BuildContext, options: DeformableOptions = DeformableOptions()) -> None:
        options.check(ctx)
        super().__init__(ctx.d_model, ctx.role)
        d_model, n_heads, k = ctx.d_model, options.resolve_heads(ctx, options.heads), options.k
        self.n_heads, self.k, self.d_head = n_heads, k, d_model // n_heads
        self.norm, self.ratio = options.norm, 1.0 if options.ratio is None else options.ratio
        self.grid = sampling_grid(k, causal=ctx.role == "decoder")
        self.value = nn.Linear(d_model, d_model)
        self.offsets = nn.Linear(d_model, n_heads * k)
        self.point_weights = nn.Linear(d_model, n_heads * k)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(ctx.dropout)
        nn.init.zeros_(self.offsets.weight)
        nn.init.zeros_(self.offsets.bias)

    # ---- pieces ---------------------------------------------------------------------------
    def _values(self, src: Tensor, padding_mask: Tensor | None) -> Tensor:
        """Projected values split into heads, zero on padding: (B, S, D) -> (B, H, S, d_head)."""
        v = masked_fill_padding(self.value(src), padding_mask)
        B, S, _ = v.shape
        return v.view(B, S, self.n_heads, self.d_head).transpose(1, 2)

    def _points(self, x: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
        """Sampling positions and normalised point weights, both (B, H, T, K).

        ``ref`` broadcasts to (B, 1, T, 1): the reference point r_q of each query.
        """
        B, T, _ = x.shape
        shape = (B, T, self.n_heads, self.k)
        delta = self.offsets(x).view(shape).permute(0, 2, 1, 3)  # (B, H, T, K)
        logits = self.point_weights(x).view(shape).permute(0, 2, 1, 3)  # (B, H, T, K)
        grid = torch.tensor(self.grid, dtype=x.dtype, device=x.device)  # (K,)
        pos = ref + grid + delta  # (B, H, T, K)
        w = logits.softmax(-1) if self.norm == "softmax" else logits.sigmoid()
        return pos, self.dropout(w)

    def _read(
        self, v: Tensor, pos: Tensor, w: Tensor, key_ok: Tensor | None, limit: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Weighted, interpolated reads of ``v`` (B, H, S, d_head) at ``pos`` (B, H, T, K).

        ``key_ok`` (B, S) marks readable positions (None: all); ``limit`` (1, 1, T, 1) or an int is
        the highest position each query may read (decoder). Returns the output (B, H, T, d_head)
        and, for recording, the neighbour indices and their weights, both (B, H, T, 2K).
        """
        B, H, S, dh = v.shape
        T, K = pos.shape[2], pos.shape[3]
        idx, coef = linear_neighbours(pos, S, key_ok, limit)  # (B, H, T, 2K) each
        coef = coef * torch.cat([w, w], -1)  # times the point weights
        gathered = v.gather(2, idx.reshape(B, H, T * 2 * K, 1).expand(-1, -1, -1, dh))
        gathered = gathered.view(B, H, T, 2 * K, dh)  # (B, H, T, 2K, d_head)
        out = torch.einsum("bhtn,bhtnd->bhtd", coef, gathered)  # (B, H, T, d_head)
        return out, idx, coef

    def _merge(self, y: Tensor) -> Tensor:
        B, H, T, dh = y.shape
        return self.out(y.transpose(1, 2).reshape(B, T, H * dh))

    def _record(self, idx: Tensor, coef: Tensor, S: int) -> None:
        """Dense effective weights (B, H, T, S): interpolation weight x point weight, summed."""
        dense = coef.new_zeros(*idx.shape[:3], S)
        self.last_weights = dense.scatter_add_(3, idx, coef).detach()

    # ---- Mixer interface --------------------------------------------------------------------
    def forward(
        self,
        x: Tensor,
        *,
        padding_mask: Tensor | None = None,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> Tensor:
        T = x.shape[1]
        q = torch.arange(T, device=x.device)
        limit = None
        src, key_pad = self.keys_of(x, padding_mask, memory, memory_padding_mask)
        v = self._values(src, key_pad)
        ref = reference_points(self.role, q, src, key_pad, self.ratio, x.dtype)
        pos, w = self._points(x, ref)
        if self.role == "decoder":
            pos = torch.minimum(pos, ref)
            limit = q[None, None, :, None]
        key_ok = None if key_pad is None else ~key_pad
        y, idx, coef = self._read(v, pos, w, key_ok, limit)
        if self.record_weights:
            self._record(idx, coef, v.shape[2])
        return self._merge(y)

    def step(
        self,
        x_t: Tensor,
        state: DeformState | None,
        *,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> tuple[Tensor, DeformState]:
        state = DeformState() if state is None else state.copy()
        t = state.t
        q = torch.tensor([t], device=x_t.device)
        if self.role == "decoder":
            v_t = self._values(x_t, None)  # (B, H, 1, d_head)
            state.v, v = extend_cache(state.v, v_t)  # type: ignore[arg-type]  (B, H, t+1, d_head)
            ref = torch.full((1, 1, 1, 1), float(t), dtype=x_t.dtype, device=x_t.device)
            pos, w = self._points(x_t, ref)
            y, _, _ = self._read(v, torch.minimum(pos, ref), w, None, t)
            state.t = t + 1
            return self._merge(y), state
        if self.role == "cross":
            if state.v is None:
                if memory is None:
                    raise ValueError("deformable cross role needs memory on the first step")
                state.v = self._values(memory, memory_padding_mask)
                state.key_ok, state.src_len = source_keys(memory, memory_padding_mask)
            ref = cross_reference(q, state.src_len, self.ratio, x_t.dtype)  # (B, 1, 1, 1)
            pos, w = self._points(x_t, ref)
            y, _, _ = self._read(state.v, pos, w, state.key_ok, None)
            state.t = t + 1
            return self._merge(y), state
        return super().step(x_t, state, memory=memory, memory_padding_mask=memory_padding_mask)

    def flops(self, tgt_len: int, src_len: int | None = None) -> int:
        """value projection + offset and weight predictors + normalisation (3 per point)
        + interpolation (3 per point and channel) + weighted sum (2 per point and channel) + output."""
        T, d, HK = tgt_len, self.d_model, self.n_heads * self.k
        S = src_len if (self.role == "cross" and src_len is not None) else T
        return (
            linear_flops(S, d, d)
            + 2 * linear_flops(T, d, HK)
            + softmax_flops(T * self.n_heads, self.k)  # softmax or sigmoid: 3 per point
            + 5 * T * self.k * d
            + linear_flops(T, d, d)
        )
