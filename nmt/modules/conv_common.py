"""Shared machinery of lightweight and dynamic convolution (Wu et al. 2019, "Pay Less Attention").

Both mechanisms compute, for a sequence ``x`` (B, T, D)::

    h      = GLU(x W_in + b_in)            (or x W_in + b_in with glu=false)   # (B, T, D)
    h[pad] = 0                                                                  # padding reads as 0
    w_t    = DropConnect(softmax_K(kernel logits at t))                         # (H, K) per position
    y_t,c  = sum_k w_t[h(c), k] * h[t + k - left, c]    (out-of-range positions read as 0)
    out    = y W_out + b_out

where channel ``c`` belongs to head ``h(c) = c // (D / H)`` and ``left`` is the left padding:
``K // 2`` in the encoder (centred window, K odd), ``K - 1`` in the decoder (causal window).
The subclasses only say where the kernel logits come from (``kernel_logits``).

Two equivalent computations of the convolution (``impl`` option):

- ``unfold``: windows (B, T, D, K) as a strided view of the padded input, then a weighted sum over
  K. Memory and time O(B T D K).
- ``band``: the kernels are written into a banded (B*H, T, T) matrix, then one bmm with the input
  split into heads (B*H, T, D/H). Memory O(B H T^2), time O(B T^2 D); fast for short sequences.
- ``auto`` (default): ``band`` when T <= ``BAND_MAX_LEN`` (512, fairseq's threshold), else ``unfold``.

Incremental decoding keeps the last K-1 projected inputs, so one step costs O(K D).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.modules.base import Mixer, MixerState, Role, linear_flops, masked_fill_padding, step_position
from nmt.modules.options import BuildContext, MechanismOptions

# fairseq's LightConv / DynamicConv kernel widths for layers 0..5 (transformer_big-sized models);
# deeper layers reuse the last width.
FAIRSEQ_WIDTHS: tuple[int, ...] = (3, 7, 15, 31, 31, 31)
BAND_MAX_LEN = 512
IMPLS: tuple[str, ...] = ("auto", "unfold", "band")


def default_kernel_width(layer: int) -> int:
    """fairseq's kernel width for 0-based ``layer`` (3, 7, 15, 31, 31, 31, then 31)."""
    if layer < 0:
        raise ValueError(f"layer index must be >= 0, got {layer}")
    return FAIRSEQ_WIDTHS[min(layer, len(FAIRSEQ_WIDTHS) - 1)]


def left_padding(role: Role, k: int) -> int:
    """Positions of zero padding on the left of the window: centred (encoder), causal (decoder)."""
    return k // 2 if role == "encoder" else k - 1


@dataclass(frozen=True)
class ConvOptions(MechanismOptions):
    """``NAME[:k=..,heads=..,glu=..,dropconnect=..,impl=auto|unfold|band]`` (subclassed per mechanism)."""

    k: int | None = None  # kernel width; None: fairseq's width for the layer
    heads: int | None = None  # None: the model's n_heads
    glu: bool = True
    dropconnect: float | None = None  # None: the model's attention_dropout
    impl: Literal["auto", "unfold", "band"] = "auto"

    def __post_init__(self) -> None:
        if self.k is not None and self.k < 1:
            self.fail(f"option k={self.k} must be a positive kernel width")
        if self.dropconnect is not None and not 0.0 <= self.dropconnect < 1.0:
            self.fail(f"option dropconnect={self.dropconnect} must be in [0, 1)")
        if self.impl not in IMPLS:
            self.fail(f"option impl={self.impl!r} must be one of {', '.join(IMPLS)}")

    def kernel_size(self, ctx: BuildContext) -> int:
        return default_kernel_width(ctx.layer) if self.k is None else self.k

    def check(self, ctx: BuildContext) -> None:
        if ctx.role == "cross":
            self.fail(
                "convolution mixes positions of one sequence and has no cross-attention role; "
                "use an attention mask (e.g. '1000') for cross-attention"
            )
        k = self.kernel_size(ctx)
        if ctx.role == "encoder" and k % 2 == 0:
            self.fail(f"option k={k} must be odd in the encoder (centred window, k//2 each side)")
        self.resolve_heads(ctx, self.heads)


@dataclass(eq=False)
class ConvState(MixerState):
    """A convolution's decoding state: the last K-1 projected inputs (B, K-1, D), oldest first."""

    buf: Tensor | None = None


def apply_windows(windows: Tensor, kernel: Tensor) -> Tensor:
    """Weighted sum of windows: ``windows`` (B, T, D, K), ``kernel`` (B|1, T|1, H, K) -> (B, T, D).

    Channel c uses head c // (D / H) of the kernel.
    """
    B, T, D, K = windows.shape
    H = kernel.shape[2]
    windows = windows.reshape(B, T, H, D // H, K)  # (B, T, H, D/H, K)
    kernel = kernel.expand(B, T, H, K)  # (B, T, H, K)
    y = torch.einsum("bthck,bthk->bthc", windows, kernel)  # (B, T, H, D/H)
    return y.reshape(B, T, D)


def unfold_conv(h: Tensor, kernel: Tensor, left: int) -> Tensor:
    """Convolution via strided windows: ``h`` (B, T, D), ``kernel`` (B|1, T|1, H, K) -> (B, T, D)."""
    K = kernel.shape[-1]
    padded = F.pad(h, (0, 0, left, K - 1 - left))  # (B, T+K-1, D)
    windows = padded.unfold(1, K, 1)  # (B, T, D, K), window of output t starts at input t - left
    return apply_windows(windows, kernel)


def band_matrix(kernel: Tensor, batch: int, length: int, left: int) -> Tensor:
    """Banded weights A[b, h, t, s] = kernel[b, t, h, s - t + left] (0 off the band) -> (B, H, T, T).

    ``kernel`` is (B|1, T|1, H, K). Built by skewing: each row (t, :K) padded with T zeros and
    re-read with row length T+K-1 lands at columns t..t+K-1; columns are padded positions shifted
    by ``left``, so narrowing to [left, left+T) keeps the real ones.
    """
    H, K = kernel.shape[2], kernel.shape[3]
    B, T = batch, length
    w = kernel.expand(B, T, H, K).permute(0, 2, 1, 3).reshape(B * H, T, K)  # (B*H, T, K)
    w = F.pad(w, (0, T))  # (B*H, T, K+T)
    w = w.reshape(B * H, T * (K + T))[:, : T * (T + K - 1)].reshape(B * H, T, T + K - 1)
    return w[:, :, left : left + T].reshape(B, H, T, T)  # (B, H, T, T)


def band_conv(h: Tensor, band: Tensor) -> Tensor:
    """Convolution as a matrix product: ``h`` (B, T, D), ``band`` (B, H, T, T) -> (B, T, D)."""
    B, T, D = h.shape
    H = band.shape[1]
    heads = h.reshape(B, T, H, D // H).transpose(1, 2).reshape(B * H, T, D // H)  # (B*H, T, D/H)
    y = torch.bmm(band.reshape(B * H, T, T), heads)  # (B*H, T, D/H)
    return y.reshape(B, H, T, D // H).transpose(1, 2).reshape(B, T, D)


class ConvMixer(Mixer):
    """Input projection (+GLU), softmax-normalised depthwise convolution with H shared-weight heads,
    DropConnect, output projection. Subclasses define ``kernel_logits`` and ``kernel_flops``."""

    name = "conv"

    def __init__(self, ctx: BuildContext, options: ConvOptions) -> None:
        options.check(ctx)
        super().__init__(ctx.d_model, ctx.role)
        d_model, glu = ctx.d_model, options.glu
        self.kernel_size = options.kernel_size(ctx)
        self.left = left_padding(ctx.role, self.kernel_size)
        self.heads = options.resolve_heads(ctx, options.heads)
        self.glu = glu
        self.dropconnect = ctx.dropout if options.dropconnect is None else options.dropconnect
        self.impl = options.impl
        self.in_proj = nn.Linear(d_model, 2 * d_model if glu else d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj.weight)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.in_proj.bias)
        nn.init.zeros_(self.out_proj.bias)
        self.init_kernel()

    # --- to be defined by the mechanism -------------------------------------------------------
    def init_kernel(self) -> None:
        """Create the mechanism's kernel parameters (called at the end of ``__init__``)."""
        raise NotImplementedError

    def kernel_logits(self, h: Tensor) -> Tensor:
        """Unnormalised kernels from the projected input ``h`` (B, T, D) -> (B|1, T|1, H, K)."""
        raise NotImplementedError

    def kernel_flops(self, tgt_len: int) -> int:
        """FLOPs of computing and normalising the kernels for ``tgt_len`` positions."""
        raise NotImplementedError

    # --- shared computation -------------------------------------------------------------------
    def project(self, x: Tensor) -> Tensor:
        """Input projection, then GLU if enabled: (B, T, D) -> (B, T, D)."""
        h = self.in_proj(x)
        return F.glu(h, dim=-1) if self.glu else h

    def kernel(self, h: Tensor) -> Tensor:
        """Normalised kernels with DropConnect (training only): (B|1, T|1, H, K)."""
        w = torch.softmax(self.kernel_logits(h), dim=-1)
        return F.dropout(w, p=self.dropconnect, training=self.training)

    def use_band(self, length: int) -> bool:
        if self.impl == "auto":
            return length <= BAND_MAX_LEN
        return self.impl == "band"

    def forward(
        self,
        x: Tensor,
        *,
        padding_mask: Tensor | None = None,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> Tensor:
        B, T, _ = x.shape
        h = masked_fill_padding(self.project(x), padding_mask)  # (B, T, D)
        w = self.kernel(h)  # (B|1, T|1, H, K)
        band = None
        if self.use_band(T) or self.record_weights:
            band = band_matrix(w, B, T, self.left)  # (B, H, T, T)
        if self.record_weights:  # padded keys contribute nothing: their effective weight is 0
            recorded = band.detach()
            if padding_mask is not None:
                recorded = recorded.masked_fill(padding_mask[:, None, None, :], 0.0)
            self.last_weights = recorded  # (B, H, T, T)
        y = band_conv(h, band) if self.use_band(T) else unfold_conv(h, w, self.left)  # (B, T, D)
        return self.out_proj(y)

    def step(
        self,
        x_t: Tensor,
        state: ConvState | None,
        *,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> tuple[Tensor, ConvState]:
        if self.role != "decoder":
            raise RuntimeError(f"{self.name}: incremental decoding is only defined for the decoder role")
        B, _, D = x_t.shape
        K = self.kernel_size
        h_t = self.project(x_t)  # (B, 1, D)
        buf = None if state is None else state.buf
        if buf is None:  # positions before the start read as zeros (causal padding)
            buf = h_t.new_zeros(B, K - 1, D)
        window = torch.cat([buf, h_t], dim=1)  # (B, K, D), oldest first
        w = self.kernel(h_t)  # (B|1, 1, H, K)
        y = apply_windows(window.transpose(1, 2).unsqueeze(1), w)  # (B, 1, D)
        return self.out_proj(y), ConvState(t=step_position(state) + 1, buf=window[:, 1:])

    def flops(self, tgt_len: int, src_len: int | None = None) -> int:
        """in_proj (+GLU: sigmoid and product, 2 per channel) + kernels + convolution + out_proj.

        The convolution counts what runs: 2 T D K on the ``unfold`` path, 2 T^2 D on the ``band``
        path (a dense (T, T) banded matrix per head times the input, zeros included)."""
        T, D, K = tgt_len, self.d_model, self.kernel_size
        total = linear_flops(T, D, 2 * D if self.glu else D)
        if self.glu:
            total += 2 * T * D
        total += self.kernel_flops(T)
        total += 2 * T * T * D if self.use_band(T) else 2 * T * D * K
        total += linear_flops(T, D, D)
        return total

    def extra_repr(self) -> str:
        return (
            f"role={self.role}, k={self.kernel_size}, heads={self.heads}, glu={self.glu}, "
            f"dropconnect={self.dropconnect}, impl={self.impl}"
        )
