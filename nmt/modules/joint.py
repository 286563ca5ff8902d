"""The joint form "0010&deform_attn" / "0010&deform_conv": the key-content saliency term E3 added to
deformable sampling inside one sublayer, sharing its value and output projections.

E3 alone ("0010") gives head m of a query the weights
``a_{m,j} = softmax_j(u_m^T V^C_m x_j / sqrt(d_head))`` over the keys j it may read (all real
keys; the prefix j <= q in the decoder; the real source positions in the cross role). The joint
form mixes the deformable operator's own values with them:

- ``0010&deform_attn`` (values v = W' x, heads of d_head channels, output W)::

      y_q = W [ sum_k a^D_{m,k} v_m(p_{m,k}) + sum_j a_{m,j} v_{m,j} ]_m + b

  i.e. the parallel sum "0010+deform_attn" with the two branches' value projections tied, their
  output projections tied and one output bias.

- ``0010&deform_conv`` (identity values, as the convolution: W'_m = I; per-point matrices W_k)::

      y_q = sum_k W_k s_k(q) + W_E [ sum_j a_{m,j} x_{m,j} ]_m + b

  E3's weighted average of x enters the convolution as one more "point" with its own matrix W_E
  (D x D, no bias), i.e. "0010+deform_conv" with E3's value projection the identity and one bias.

Both add only V^C (D x D, no bias: a key bias adds u^T b to every logit, which the softmax
cancels), u (H x d_head) and, for deform_conv, W_E to the deformable operator. E3 is
query-independent outside the decoder: one average per sentence and head, broadcast over queries.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.modules.base import Mixer, check_no_nan_rows, extend_cache, linear_flops, softmax_flops
from nmt.modules.deform_conv import DeformConv, DeformConvOptions
from nmt.modules.deformable import (
    Deformable,
    DeformableOptions,
    DeformState,
    cross_reference,
    reference_points,
    source_keys,
)
from nmt.modules.options import BuildContext, MechanismOptions
from nmt.modules.spec import MixerSpec, SpecError

E3_MASK = "0010"
DEFORMABLE = ("deform_attn", "deformable", "deform_conv")


class KeySaliency(nn.Module):
    """E3 = u_m^T V^C_m x_j: per-head key-content logits and the average of values they weight."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.k_proj = nn.Linear(d_model, d_model, bias=False)  # V^C
        self.u = nn.Parameter(torch.randn(n_heads, self.d_head) * 0.02)
        self.scale = self.d_head**-0.5
        self.dropout = dropout

    def logits(self, src: Tensor) -> Tensor:
        """Scaled E3 logits of the keys ``src`` (B, S, D) -> (B, H, S, 1)."""
        B, S, _ = src.shape
        k = self.k_proj(src).view(B, S, self.n_heads, self.d_head)  # (B, S, H, dh)
        return torch.einsum("bshd,hd->bhs", k, self.u * self.scale).unsqueeze(-1)

    def average(
        self, logits: Tensor, values: Tensor, key_pad: Tensor | None, causal: bool, T: int
    ) -> tuple[Tensor, Tensor]:
        """Weights over the keys and the weighted values: ``logits`` (B, H, S, 1), ``values``
        (B, H, S, dh) -> probs (B, H, Tq, S) and averages (B, H, Tq, dh), Tq = T if causal else 1."""
        B, H, S, _ = values.shape
        scores = logits.transpose(-1, -2)  # (B, H, 1, S)
        allowed = None
        if causal:
            allowed = torch.ones(T, S, dtype=torch.bool, device=values.device).tril()[None, None]  # (1, 1, T, S)
        if key_pad is not None:
            real = ~key_pad[:, None, None, :]  # (B, 1, 1, S)
            allowed = real if allowed is None else allowed & real
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))  # (B, H, Tq, S)
        probs = check_no_nan_rows(scores.softmax(-1))
        if self.training and self.dropout > 0:
            probs = F.dropout(probs.expand(B, H, T, S), self.dropout)
        return probs, probs @ values

    def flops(self, tgt_len: int, src_len: int, causal: bool, d_model: int) -> int:
        """V^C on the keys, u·k per key, softmax over Tq rows, weighted sum (Tq = T if causal else 1)."""
        Tq = tgt_len if causal else 1
        return (
            linear_flops(src_len, d_model, d_model, bias=False)
            + 2 * src_len * d_model
            + softmax_flops(self.n_heads * Tq, src_len)
            + 2 * Tq * src_len * d_model
        )


def _heads(x: Tensor, n_heads: int) -> Tensor:
    """(B, S, D) -> (B, H, S, D/H)."""
    B, S, D = x.shape
    return x.view(B, S, n_heads, D // n_heads).transpose(1, 2)


class JointDeformAttn(Mixer):
    """E3 and deformable attention mixing the same values W' x before one output projection W."""

    def __init__(self, deform: Deformable, dropout: float = 0.0) -> None:
        super().__init__(deform.d_model, deform.role)
        self.deform = deform
        self.saliency = KeySaliency(deform.d_model, deform.n_heads, dropout)

    def forward(
        self,
        x: Tensor,
        *,
        padding_mask: Tensor | None = None,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> Tensor:
        d = self.deform
        T = x.shape[1]
        q = torch.arange(T, device=x.device)
        src, key_pad = self.keys_of(x, padding_mask, memory, memory_padding_mask)
        ref = reference_points(self.role, q, src, key_pad, d.ratio, x.dtype)
        v = d._values(src, key_pad)  # (B, H, S, dh)
        pos, w = d._points(x, ref)  # (B, H, T, K)
        limit = None
        if self.role == "decoder":
            pos, limit = torch.minimum(pos, ref), q[None, None, :, None]
        y, idx, coef = d._read(v, pos, w, None if key_pad is None else ~key_pad, limit)  # (B, H, T, dh)
        causal = self.role == "decoder"
        probs, e3 = self.saliency.average(self.saliency.logits(src), v, key_pad, causal, T)  # (B, H, Tq, dh)
        if self.record_weights:  # both mix the same values: one effective weight per (query, key)
            dense = coef.new_zeros(*idx.shape[:3], v.shape[2]).scatter_add_(3, idx, coef)
            self.last_weights = (dense + probs).detach()  # (B, H, T, S)
        return d._merge(y + e3)

    def step(
        self,
        x_t: Tensor,
        state: DeformState | None,
        *,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> tuple[Tensor, DeformState]:
        """State (``DeformState``): decoder ``v`` and ``e3`` (``TimeCache``s of the prefix's values and
        E3 logits); cross ``v``, ``key_ok``, ``src_len`` and ``e3`` (the query-independent average,
        (B, H, 1, dh))."""
        d = self.deform
        state = DeformState() if state is None else state.copy()
        t = state.t
        if self.role == "decoder":
            state.v, v = extend_cache(state.v, d._values(x_t, None))  # type: ignore[arg-type]  (B, H, t+1, dh)
            state.e3, logits = extend_cache(state.e3, self.saliency.logits(x_t))  # type: ignore[arg-type]  (B, H, t+1, 1)
            ref = torch.full((1, 1, 1, 1), float(t), dtype=x_t.dtype, device=x_t.device)
            pos, w = d._points(x_t, ref)
            y, _, _ = d._read(v, torch.minimum(pos, ref), w, None, t)
            _, e3 = self.saliency.average(logits, v, None, False, 1)
            state.t = t + 1
            return d._merge(y + e3), state
        if self.role == "cross":
            if state.v is None:
                if memory is None:
                    raise ValueError("0010&deform_attn cross role needs memory on the first step")
                state.v = d._values(memory, memory_padding_mask)
                _, state.e3 = self.saliency.average(self.saliency.logits(memory), state.v, memory_padding_mask, False, 1)
                state.key_ok, state.src_len = source_keys(memory, memory_padding_mask)
            ref = cross_reference(torch.tensor([t], device=x_t.device), state.src_len, d.ratio, x_t.dtype)
            pos, w = d._points(x_t, ref)
            y, _, _ = d._read(state.v, pos, w, state.key_ok, None)
            state.t = t + 1
            return d._merge(y + state.e3), state
        return super().step(x_t, state, memory=memory, memory_padding_mask=memory_padding_mask)

    def flops(self, tgt_len: int, src_len: int | None = None) -> int:
        """Deformable attention's FLOPs + E3 (``KeySaliency.flops``) + T D to add the two mixtures."""
        S = src_len if (self.role == "cross" and src_len is not None) else tgt_len
        causal = self.role == "decoder"
        return (
            self.deform.flops(tgt_len, src_len)
            + self.saliency.flops(tgt_len, S, causal, self.d_model)
            + tgt_len * self.d_model
        )


class JointDeformConv(Mixer):
    """E3's weighted average of the inputs as one more point of the deformable convolution."""

    def __init__(self, conv: DeformConv, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__(conv.d_model, conv.role)
        if conv.d_model % n_heads:
            raise ValueError(f"d_model={conv.d_model} is not divisible by heads={n_heads}")
        self.conv = conv
        self.saliency = KeySaliency(conv.d_model, n_heads, dropout)
        self.e3_out = nn.Linear(conv.d_model, conv.d_model, bias=False)  # W_E

    def _e3(self, logits: Tensor, src: Tensor, key_pad: Tensor | None, causal: bool, T: int) -> Tensor:
        """W_E [E3 average of ``src`` (B, 1, S, D)]_m -> (B, Tq, D)."""
        values = _heads(src.squeeze(1), self.saliency.n_heads)  # (B, H, S, dh)
        probs, avg = self.saliency.average(logits, values, key_pad, causal, T)  # (B, H, Tq, dh)
        if self.record_weights:
            self.last_weights = probs.detach()  # (B, H, Tq, S): E3's weights (the conv's W_k are not weights on keys)
        B, H, Tq, dh = avg.shape
        return self.e3_out(avg.transpose(1, 2).reshape(B, Tq, H * dh))

    def forward(
        self,
        x: Tensor,
        *,
        padding_mask: Tensor | None = None,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> Tensor:
        c = self.conv
        T = x.shape[1]
        q = torch.arange(T, device=x.device)
        keys, key_pad = self.keys_of(x, padding_mask, memory, memory_padding_mask)
        ref = reference_points(self.role, q, keys, key_pad, c.opts.cross_ratio, x.dtype)
        src = c.source(keys, key_pad)
        y = c.conv(x, src, ref, None if key_pad is None else ~key_pad)  # (B, T, D)
        logits = self.saliency.logits(src.squeeze(1))
        return y + self._e3(logits, src, key_pad, self.role == "decoder", T)

    def step(
        self,
        x_t: Tensor,
        state: DeformState | None,
        *,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> tuple[Tensor, DeformState]:
        """State (``DeformState``): decoder ``x`` and ``e3`` (``TimeCache``s of the prefix and its E3
        logits); cross the convolution's cached source plus ``e3`` (the query-independent W_E
        average, (B, 1, D))."""
        c = self.conv
        state = DeformState() if state is None else state.copy()
        t = state.t
        if self.role == "decoder":
            state.x, src = extend_cache(state.x, x_t.unsqueeze(1))  # type: ignore[arg-type]  (B, 1, t+1, D)
            state.e3, logits = extend_cache(state.e3, self.saliency.logits(x_t))  # type: ignore[arg-type]  (B, H, t+1, 1)
            ref = torch.full((1, 1, 1, 1), float(t), dtype=x_t.dtype, device=x_t.device)
            y = c.conv(x_t, src, ref, None) + self._e3(logits, src, None, False, 1)
            state.t = t + 1
            return y, state
        if self.role == "cross":
            if state.x is None:
                c.cross_source(state, memory, memory_padding_mask)
                logits = self.saliency.logits(state.x.squeeze(1))  # type: ignore[union-attr]
                state.e3 = self._e3(logits, state.x, memory_padding_mask, False, 1)  # (B, 1, D)
            ref = cross_reference(torch.tensor([t], device=x_t.device), state.src_len, c.opts.cross_ratio, x_t.dtype)
            state.t = t + 1
            return c.conv(x_t, state.x, ref, state.key_ok) + state.e3, state
        return super().step(x_t, state, memory=memory, memory_padding_mask=memory_padding_mask)

    def flops(self, tgt_len: int, src_len: int | None = None) -> int:
        """Deformable convolution's FLOPs + E3 (``KeySaliency.flops``) + W_E on Tq rows + T D to add."""
        S = src_len if (self.role == "cross" and src_len is not None) else tgt_len
        causal = self.role == "decoder"
        Tq = tgt_len if causal else 1
        return (
            self.conv.flops(tgt_len, src_len)
            + self.saliency.flops(tgt_len, S, causal, self.d_model)
            + linear_flops(Tq, self.d_model, self.d_model, bias=False)
            + tgt_len * self.d_model
        )


def check_joint(spec: MixerSpec) -> None:
    """Refuse a joint spec that is not "0010&deform_attn" or "0010&deform_conv" (either order)."""
    names = sorted((t.name for t in spec.terms), key=lambda n: n != E3_MASK)
    if len(spec.terms) != 2 or names[0] != E3_MASK or names[1] not in DEFORMABLE:
        raise SpecError(
            f"joint form {str(spec)!r}: '&' combines the E3 mask '0010' with deform_attn (alias deformable) "
            "or deform_conv, e.g. '0010&deform_attn'; for other pairs use '+' (parallel) or '>' (stacked)"
        )
    e3, deform = sorted(spec.terms, key=lambda t: t.name != E3_MASK)
    if e3.options:
        raise SpecError(f"joint form {str(spec)!r}: the '0010' term takes no options here")


def build_joint(spec: MixerSpec, ctx: BuildContext, options: tuple[MechanismOptions, ...]) -> Mixer:
    """The mixer of a joint spec "0010&deform_attn[:opts]" or "0010&deform_conv[:opts]" (either order),
    with the terms' checked ``options``."""
    check_joint(spec)
    deform = next(o for o in options if isinstance(o, (DeformConvOptions, DeformableOptions)))
    if isinstance(deform, DeformConvOptions):
        if ctx.d_model % ctx.n_heads:
            raise SpecError(f"joint form {str(spec)!r}: d_model={ctx.d_model} is not divisible by n_heads={ctx.n_heads}")
        return JointDeformConv(DeformConv(ctx, deform), ctx.n_heads, ctx.dropout)
    return JointDeformAttn(Deformable(ctx, deform), ctx.dropout)
