"""Salient-position attention (SPANet adapted to 1D): attend only to the k most salient keys.

Per head h, with q = W_q x, k = W_k src, v = W_v src split into H heads of d_head channels::

    s_{h,j}   = ||k_{h,j}||^2                        saliency of key j, per head
    J_h       = the n keys with the largest s_{h,j}  (padding never selected; ties -> earlier key)
    y_{q,h}   = sum_{j in J_h} softmax_j(q_{h,q} . k_{h,j} / sqrt(d_head)) v_{h,j}
    y_q       = W_o [y_{q,1}; ...; y_{q,H}]

The selection is a hard top-n (a sort of the scores, non-differentiable indices); gradients reach
W_k through the kept keys' logits and values. The budget n of a row with true length L is
``min(k, L)`` (option ``k``) or ``min(L, max(1, ceil(frac * L)))`` (option ``frac``); the default is
``frac=0.5``.

Roles:

- ``encoder``: every query attends to the same n salient source positions of its head.
- ``cross``: the same over the encoder output; ``step`` computes the selection once and caches it.
- ``decoder``: prefix-only selection. Query q picks its n_q most salient keys among 0..q
  (n_q = min(k, q+1) or max(1, ceil(frac * (q+1)))), so the future never leaks and ``step`` ==
  ``forward``. ``forward`` does this in O(T^2) per head (each key's rank in every prefix via a
  cumulative count), ``step`` sorts the cached prefix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nmt.modules.base import (
    Mixer,
    MixerState,
    TimeCache,
    check_no_nan_rows,
    extend_cache,
    linear_flops,
    softmax_flops,
)
from nmt.modules.options import BuildContext, MechanismOptions, register

DEFAULT_FRAC = 0.5


@dataclass(eq=False)
class SalientState(MixerState):
    """Decoder: the prefix's keys and values (``TimeCache``, (B, H, t, dh)); cross: the selected
    memory keys and values and which of them are kept, set on the first step."""

    k: TimeCache | None = None
    v: TimeCache | None = None
    k_sel: Tensor | None = None
    v_sel: Tensor | None = None
    keep: Tensor | None = None


@register("salient", examples=("salient:k=2", "salient:k=3", "salient:frac=0.5,heads=1"))
@dataclass(frozen=True)
class SalientOptions(MechanismOptions):
    """``salient[:heads=H][,k=K | ,frac=F]``; neither k nor frac: ``frac=0.5``."""

    NAME = "salient"
    heads: int | None = None  # None: the model's n_heads
    k: int | None = None  # keep the k most salient keys
    frac: float | None = None  # or this fraction of the keys

    def __post_init__(self) -> None:
        if self.k is not None and self.frac is not None:
            self.fail("give option k or frac, not both")
        if self.k is not None and self.k < 1:
            self.fail(f"option k={self.k} must be >= 1")
        if self.frac is not None and not 0 < self.frac <= 1:
            self.fail(f"option frac={self.frac} must be in (0, 1]")

    def check(self, ctx: BuildContext) -> None:
        self.resolve_heads(ctx, self.heads)

    def build(self, ctx: BuildContext) -> Salient:
        return Salient(ctx, self)


def budget(lengths: Tensor, k: int | None, frac: float | None) -> Tensor:
    """Number of keys kept for each (true or prefix) length: ``min(k, L)`` or
    ``min(L, max(1, ceil(frac * L)))``; integer tensor shaped like ``lengths``."""
    if k is not None:
        return torch.clamp(lengths, max=k)
    n = torch.clamp(torch.ceil(lengths.to(torch.float64) * frac).long(), min=1)
    return torch.minimum(n, lengths)


def rank_by_saliency(scores: Tensor) -> Tensor:
    """Key indices by decreasing score along the last dim, ties kept in position order."""
    return torch.sort(scores, dim=-1, descending=True, stable=True).indices


class Salient(Mixer):
    """Scaled dot-product attention restricted to the top-k keys by squared key norm, per head."""

    def __init__(self, ctx: BuildContext, options: SalientOptions = SalientOptions()) -> None:
        options.check(ctx)
        super().__init__(ctx.d_model, ctx.role)
        d_model, n_heads = ctx.d_model, options.resolve_heads(ctx, options.heads)
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.k = options.k
        self.frac = DEFAULT_FRAC if options.k is None and options.frac is None else options.frac
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(ctx.dropout)

    # ---- pieces ---------------------------------------------------------------------------
    def _heads(self, proj: nn.Linear, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, H, T, d_head)."""
        B, T, _ = x.shape
        return proj(x).view(B, T, self.n_heads, self.d_head).transpose(1, 2)

    def _queries(self, x: Tensor) -> Tensor:
        return self._heads(self.q_proj, x) / math.sqrt(self.d_head)  # (B, H, T, d_head)

    def _merge(self, y: Tensor) -> Tensor:
        B, H, T, dh = y.shape
        return self.out(y.transpose(1, 2).reshape(B, T, H * dh))

    @staticmethod
    def _scores(keys: Tensor, padding_mask: Tensor | None) -> Tensor:
        """Saliency ||k_{h,j}||^2, -inf at padding: (B, H, S)."""
        s = keys.pow(2).sum(-1)  # (B, H, S)
        if padding_mask is not None:
            s = s.masked_fill(padding_mask[:, None, :], float("-inf"))
        return s

    def _select(self, keys: Tensor, values: Tensor, scores: Tensor, n: Tensor) -> tuple[Tensor, ...]:
        """The top-``n`` keys of each row: indices (B, H, N), keys and values (B, H, N, d_head),
        and ``keep`` (B, H, N), False at ranks >= n (N = max n). ``n`` is (B,) long."""
        N = max(int(n.max()), 1)
        idx = rank_by_saliency(scores)[..., :N]  # (B, H, N)
        keep = torch.arange(idx.shape[-1], device=idx.device) < n[:, None, None]  # (B, H, N)
        gather = idx.unsqueeze(-1).expand(-1, -1, -1, self.d_head)
        return idx, keys.gather(2, gather), values.gather(2, gather), keep

    def _select_source(self, src: Tensor, padding_mask: Tensor | None) -> tuple[Tensor, ...]:
        """Project ``src`` (B, S, D) and keep each row's salient keys (see ``_select``)."""
        B, S, _ = src.shape
        keys, values = self._heads(self.k_proj, src), self._heads(self.v_proj, src)
        if padding_mask is None:
            lengths = torch.full((B,), S, device=src.device)
        else:
            lengths = (~padding_mask).sum(1)
        n = budget(lengths, self.k, self.frac)  # (B,)
        return self._select(keys, values, self._scores(keys, padding_mask), n)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
        """Softmax attention of q (B, H, T, d) over k, v (B, H, N, d); ``keep`` broadcasts to
        (B, H, T, N). Returns the output (B, H, T, d) and the probabilities (B, H, T, N)."""
        logits = (q @ k.transpose(-1, -2)).masked_fill(~keep, float("-inf"))  # (B, H, T, N)
        p = check_no_nan_rows(logits.softmax(-1))
        return self.dropout(p) @ v, p

    def _decoder_forward(self, x: Tensor, padding_mask: Tensor | None) -> Tensor:
        T = x.shape[1]
        q, k, v = self._queries(x), self._heads(self.k_proj, x), self._heads(self.v_proj, x)
        s = self._scores(k, padding_mask)  # (B, H, T)
        pos = torch.arange(T, device=x.device)
        earlier = pos[None, :] < pos[:, None]  # (Tj, Ti): i < j
        beats = (s[..., None, :] > s[..., :, None]) | ((s[..., None, :] == s[..., :, None]) & earlier)
        # rank[b, h, q, j] = number of keys i <= q that beat key j  -> (B, H, Tq, Tj)
        rank = beats.cumsum(-1).transpose(-1, -2)
        n_q = budget(pos + 1, self.k, self.frac)  # (Tq,)
        keep = (pos[None, :] <= pos[:, None]) & (rank < n_q[:, None])  # (B, H, Tq, Tj)
        if padding_mask is not None:
            keep = keep & ~padding_mask[:, None, None, :]
        y, p = self._attend(q, k, v, keep)
        if self.record_weights:
            self.last_weights = p.detach()
        return self._merge(y)

    # ---- Mixer interface --------------------------------------------------------------------
    def forward(
        self,
        x: Tensor,
        *,
        padding_mask: Tensor | None = None,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> Tensor:
        if self.role == "decoder":
            return self._decoder_forward(x, padding_mask)
        src, src_pad = self.keys_of(x, padding_mask, memory, memory_padding_mask)
        idx, k_sel, v_sel, keep = self._select_source(src, src_pad)
        y, p = self._attend(self._queries(x), k_sel, v_sel, keep[:, :, None, :])
        if self.record_weights:
            dense = p.new_zeros(*p.shape[:3], src.shape[1])  # (B, H, T, S)
            self.last_weights = dense.scatter_(3, idx[:, :, None, :].expand_as(p), p).detach()
        return self._merge(y)

    def step(
        self,
        x_t: Tensor,
        state: SalientState | None,
        *,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> tuple[Tensor, SalientState]:
        state = SalientState() if state is None else state.copy()
        t = state.t
        q = self._queries(x_t)  # (B, H, 1, d_head)
        if self.role == "decoder":
            k_t, v_t = self._heads(self.k_proj, x_t), self._heads(self.v_proj, x_t)
            state.k, k = extend_cache(state.k, k_t)  # type: ignore[arg-type]  (B, H, t+1, d_head)
            state.v, v = extend_cache(state.v, v_t)  # type: ignore[arg-type]
            n = budget(torch.full((x_t.shape[0],), t + 1, device=x_t.device), self.k, self.frac)
            _, k_sel, v_sel, keep = self._select(k, v, self._scores(k, None), n)
            y, _ = self._attend(q, k_sel, v_sel, keep[:, :, None, :])
            state.t = t + 1
            return self._merge(y), state
        if self.role == "cross":
            if state.k_sel is None:
                if memory is None:
                    raise ValueError("salient cross role needs memory on the first step")
                _, state.k_sel, state.v_sel, state.keep = self._select_source(memory, memory_padding_mask)
            y, _ = self._attend(q, state.k_sel, state.v_sel, state.keep[:, :, None, :])  # type: ignore[index]
            state.t = t + 1
            return self._merge(y), state
        return super().step(x_t, state, memory=memory, memory_padding_mask=memory_padding_mask)

    def kept(self, tgt_len: int, src_len: int) -> list[int]:
        """Number of keys each of the ``tgt_len`` queries attends to (full-length sequences)."""
        if self.role == "decoder":
            return budget(torch.arange(1, tgt_len + 1), self.k, self.frac).tolist()
        return [int(budget(torch.tensor([src_len]), self.k, self.frac))] * tgt_len

    def flops(self, tgt_len: int, src_len: int | None = None) -> int:
        """q/k/v/output projections + query scaling (T*d) + key norms (2*S*d) + selection
        (H * S * ceil(log2 S) comparisons to sort; decoder: H * T^2 pairwise comparisons)
        + per query with n kept keys: logits 2*n*d, softmax 3*n*H, weighted sum 2*n*d.

        The decoder's ``forward`` computes its logits, softmax and weighted sum densely over the
        whole prefix matrix (the selection is a mask), so it is charged n = T for every query."""
        T, d, H = tgt_len, self.d_model, self.n_heads
        S = src_len if (self.role == "cross" and src_len is not None) else T
        proj = 2 * linear_flops(T, d, d) + 2 * linear_flops(S, d, d) + T * d
        norms = 2 * S * d
        select = H * T * T if self.role == "decoder" else H * S * max(1, math.ceil(math.log2(max(S, 1))))
        kept = [T] * T if self.role == "decoder" else self.kept(T, S)  # decoder: dense, masked
        attend = sum(4 * n * d + softmax_flops(H, n) for n in kept)
        return proj + norms + select + attend
