"""1D deformable convolution (Dai et al. 2017; modulated: DCNv2, Zhu, Hu, Lin, Dai 2019) with offset groups.

The operator the attention study (Zhu et al. 2019) casts into its generalized attention form: K sampling points, a
linear interpolation kernel G (bilinear in 2D), identity values (W'_m = I) and **one weight matrix
W_k per sampling point**. For a query at position q with content z_q, reading ``src`` (B, S, D)
whose D channels form G offset groups of D/G channels::

    delta_{g,k} = Linear(D -> G*K)(z_q)                  zero-initialised: a regular conv at start
    p_{g,k}     = r_q + d * p_k + delta_{g,k}            p_k: the regular grid, d: the dilation
    m_{g,k}     = sigmoid(Linear(D -> G*K)(z_q))         modulation only (DCNv2), zero-init: 0.5
    s_k[c]      = m_{g(c),k} * src_c(p_{g(c),k})         channel c of group g(c) = c // (D/G)
    y_q         = sum_k W_k s_k + b                      W_k: D x D, b: D

``src_c(p)`` is linear interpolation between the integer neighbours floor(p) and floor(p) + 1 with
weights 1 - frac(p) and frac(p); a neighbour outside the sequence or on padding reads zero. The W_k
are the column blocks of one ``nn.Linear(K*D, D)``, so the module is an ordinary convolution of
width K (dilation d) while the offsets are zero.

Roles, with the same rules as deformable attention (``nmt.modules.deformable``):

- ``encoder``: r_q = q, centred grid -(K//2) .. K-1-K//2.
- ``decoder``: r_q = q, causal grid -(K-1) .. 0; positions are clamped to p <= q and an upper
  neighbour beyond q is dropped, so nothing from the future is read.
- ``cross``: queries sample the encoder output around r_q = q * S / T_hat with S the row's true
  source length and T_hat = max(1, round(ratio * S)) (no peek at the target length).

There are no attention weights, so the model's attention dropout does not apply.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nmt.modules.base import (
    Mixer,
    extend_cache,
    linear_flops,
    masked_fill_padding,
    softmax_flops,
)
from nmt.modules.deformable import (
    DeformState,
    cross_reference,
    linear_neighbours,
    reference_points,
    sampling_grid,
    source_keys,
)
from nmt.modules.options import BuildContext, MechanismOptions, register


@register("deform_conv", order_aware=True,
          examples=("deform_conv", "deform_conv:k=4,groups=2,modulation=on,dilation=2", "deform_conv:ratio=1.5"))
@dataclass(frozen=True)
class DeformConvOptions(MechanismOptions):
    """``deform_conv[:k=K,groups=G,modulation=on|off,dilation=d,ratio=R]``; ``ratio``: cross role only."""

    NAME = "deform_conv"
    k: int = 3  # sampling points = kernel width
    groups: int = 1  # offset groups (channels per group: d_model / groups)
    modulation: bool = False  # DCNv2 sigmoid mask per point and group
    dilation: int = 1  # spacing of the regular grid
    ratio: float | None = None  # cross role: T_hat = max(1, round(ratio * S)); None = 1.0

    def __post_init__(self) -> None:
        if self.k < 1:
            self.fail(f"option k={self.k} must be at least 1")
        if self.groups < 1:
            self.fail(f"option groups={self.groups} must be at least 1")
        if self.dilation < 1:
            self.fail(f"option dilation={self.dilation} must be at least 1")
        if self.ratio is not None and not self.ratio > 0:
            self.fail(f"option ratio={self.ratio} must be a positive number")

    def check(self, ctx: BuildContext) -> None:
        if ctx.d_model % self.groups:
            self.fail(f"option groups={self.groups} must be a positive divisor of d_model={ctx.d_model}")
        if self.ratio is not None and ctx.role != "cross":
            self.fail(f"option ratio applies to the cross role only, not {ctx.role}")

    def build(self, ctx: BuildContext) -> DeformConv:
        return DeformConv(ctx, self)

    @property
    def cross_ratio(self) -> float:
        return 1.0 if self.ratio is None else self.ratio


def interpolate(src: Tensor, pos: Tensor, key_ok: Tensor | None, limit: Tensor | int | None) -> tuple[Tensor, Tensor, Tensor]:
    """Linear interpolation of ``src`` (B, G, S, c) at real positions ``pos`` (B, G, T, K).

    ``key_ok`` (B, S) marks readable positions (None: all); ``limit`` (an int or broadcastable to
    pos) is the highest readable position. Returns the samples (B, G, T, K, c) and the neighbour
    indices and their coefficients, both (B, G, T, 2K): lower neighbours first, then upper ones.
    """
    B, G, S, c = src.shape
    T, K = pos.shape[2], pos.shape[3]
    idx, coef = linear_neighbours(pos, S, key_ok, limit)  # (B, G, T, 2K) each
    gathered = src.gather(2, idx.reshape(B, G, T * 2 * K, 1).expand(-1, -1, -1, c))
    gathered = gathered.view(B, G, T, 2, K, c)  # (B, G, T, 2, K, c)
    samples = (coef.view(B, G, T, 2, K, 1) * gathered).sum(3)  # (B, G, T, K, c)
    return samples, idx, coef


class DeformConv(Mixer):
    """1D (modulated) deformable convolution: per-point D x D weights over linearly interpolated samples."""

    def __init__(self, ctx: BuildContext, opts: DeformConvOptions = DeformConvOptions()) -> None:
        opts.check(ctx)
        super().__init__(ctx.d_model, ctx.role)
        d_model, role = ctx.d_model, ctx.role
        self.opts = opts
        self.k, self.groups = opts.k, opts.groups
        self.grid = [opts.dilation * p for p in sampling_grid(opts.k, causal=role == "decoder")]
        self.offsets = nn.Linear(d_model, opts.groups * opts.k)
        self.modulation = nn.Linear(d_model, opts.groups * opts.k) if opts.modulation else None
        self.kernel = nn.Linear(opts.k * d_model, d_model)  # [W_1 ... W_K] and b
        for lin in (self.offsets, self.modulation):
            if lin is not None:
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

    def extra_repr(self) -> str:
        o = self.opts
        return f"role={self.role}, k={o.k}, groups={o.groups}, modulation={o.modulation}, dilation={o.dilation}"

    # ---- pieces (also used by the joint form, nmt.modules.joint) -----------------------------
    def source(self, src: Tensor, padding_mask: Tensor | None) -> Tensor:
        """``src`` (B, S, D) zeroed on padding, as (B, 1, S, D) (the layout of the decoder cache)."""
        return masked_fill_padding(src, padding_mask).unsqueeze(1)

    def conv(self, x: Tensor, src: Tensor, ref: Tensor, key_ok: Tensor | None) -> Tensor:
        """Queries ``x`` (B, T, D) read ``src`` (B, 1, S, D) around ``ref`` (broadcast to (B, 1, T, 1))
        -> (B, T, D). In the decoder role the positions are clamped to p <= ref."""
        B, T, D = x.shape
        G, K = self.groups, self.k
        S = src.shape[2]
        grouped = src.view(B, S, G, D // G).transpose(1, 2)  # (B, G, S, D/G)
        delta = self.offsets(x).view(B, T, G, K).transpose(1, 2)  # (B, G, T, K)
        grid = torch.tensor(self.grid, dtype=x.dtype, device=x.device)  # (K,)
        pos = ref + grid + delta  # (B, G, T, K)
        limit = None
        if self.role == "decoder":
            pos, limit = torch.minimum(pos, ref), ref
        samples, idx, coef = interpolate(grouped, pos, key_ok, limit)  # (B, G, T, K, D/G)
        if self.modulation is not None:
            mask = self.modulation(x).view(B, T, G, K).transpose(1, 2).sigmoid()  # (B, G, T, K)
            samples = samples * mask.unsqueeze(-1)
            coef = coef * mask.repeat(1, 1, 1, 2)
        if self.record_weights:  # where each query reads: interpolation (x modulation) summed over points
            dense = coef.new_zeros(B, G, T, S)
            self.last_weights = dense.scatter_add_(3, idx, coef).detach()  # (B, G, T, S)
        cols = samples.permute(0, 2, 3, 1, 4).reshape(B, T, K * D)  # (B, T, K*D): point k, then channel
        return self.kernel(cols)

    # ---- Mixer interface --------------------------------------------------------------------
    def forward(
        self,
        x: Tensor,
        *,
        padding_mask: Tensor | None = None,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> Tensor:
        q = torch.arange(x.shape[1], device=x.device)
        keys, key_pad = self.keys_of(x, padding_mask, memory, memory_padding_mask)
        ref = reference_points(self.role, q, keys, key_pad, self.opts.cross_ratio, x.dtype)
        return self.conv(x, self.source(keys, key_pad), ref, None if key_pad is None else ~key_pad)

    def step(
        self,
        x_t: Tensor,
        state: DeformState | None,
        *,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> tuple[Tensor, DeformState]:
        """State (``DeformState``): decoder ``x`` (``TimeCache`` of the prefix, (B, 1, t+1, D)); cross
        ``x`` (the memory zeroed on padding, (B, 1, S, D)), ``key_ok`` (B, S), ``src_len`` (B,), set
        on the first step."""
        state = DeformState() if state is None else state.copy()
        t = state.t
        if self.role == "decoder":
            state.x, src = extend_cache(state.x, x_t.unsqueeze(1))  # type: ignore[arg-type]  (B, 1, t+1, D)
            ref = torch.full((1, 1, 1, 1), float(t), dtype=x_t.dtype, device=x_t.device)
            state.t = t + 1
            return self.conv(x_t, src, ref, None), state
        if self.role == "cross":
            self.cross_source(state, memory, memory_padding_mask)
            ref = cross_reference(torch.tensor([t], device=x_t.device), state.src_len, self.opts.cross_ratio, x_t.dtype)
            state.t = t + 1
            return self.conv(x_t, state.x, ref, state.key_ok), state
        return super().step(x_t, state, memory=memory, memory_padding_mask=memory_padding_mask)

    def cross_source(self, state: DeformState, memory: Tensor | None, memory_padding_mask: Tensor | None) -> None:
        """Set the cross role's cached source in ``state`` (``x``, ``key_ok``, ``src_len``) on the first step."""
        if state.x is not None:
            return
        if memory is None:
            raise ValueError("deform_conv cross role needs memory on the first step")
        state.x = self.source(memory, memory_padding_mask)
        state.key_ok, state.src_len = source_keys(memory, memory_padding_mask)

    def flops(self, tgt_len: int, src_len: int | None = None) -> int:
        """Forward FLOPs (multiply-add = 2) of T queries; ``src_len`` does not matter (no projection
        of the source)::

            offsets       T (2 D GK + GK)
            modulation    T (2 D GK + GK) + 3 T G K (sigmoid) + T K D (mask x samples)
            interpolation 3 T K D       (two products and a sum per sampled channel)
            kernel        T (2 K D D + D)   (sum_k W_k s_k + b as one Linear(K D, D))
        """
        T, D, K, GK = tgt_len, self.d_model, self.k, self.groups * self.k
        total = linear_flops(T, D, GK) + 3 * T * K * D + linear_flops(T, K * D, D)
        if self.modulation is not None:
            total += linear_flops(T, D, GK) + softmax_flops(T * self.groups, K) + T * K * D
        return total


