"""Factored multi-head attention: logits are a sum of the enabled terms E1-E4 (Zhu et al. 2019).

For head m (d_head = d_model / H), query position q with input z_q and key position k with input
x_k, in the Transformer-XL parameterisation::

    E1 = z_q^T U_m^T V^C_m x_k        query content  x key content
    E2 = z_q^T U_m^T V^R_m R_{k-q}    query content  x relative position
    E3 = u_m^T V^C_m x_k              key content only
    E4 = v_m^T V^R_m R_{k-q}          relative position only

    logits = (sum of enabled terms) / sqrt(d_head);  attn = softmax over keys;
    out    = W [ sum_k attn_qk W'_m x_k ]_m

U = ``q_proj``, V^C = ``k_proj``, V^R = ``r_proj``, W' = ``v_proj``, W = ``out_proj``; u, v are learned
per-head vectors; R is the fixed sinusoidal encoding (dim d_model) of the relative offset.
A mask "abcd" enables (E1 E2 E3 E4); only the parameters the enabled terms need exist (E1/E2 need U,
E1/E3 need V^C, E2/E4 need V^R, E3 needs u, E4 needs v) and only enabled terms are computed.

Biases: U, V^C and V^R are bias-free (as in Transformer-XL), so a mask computes exactly its terms.
A query bias b would add b^T V^C x_k (an E3 term with u = b) and b^T V^R R_{k-q} (an E4 term with
v = b): a standard Transformer's biased "1000" is E1 plus an implicit E3. That layer is available
as the explicit option ``proj_bias`` (``qk_bias=True`` here), never by default. A key bias only adds
terms constant over keys (cancelled by the softmax); W' and W keep their biases, which act after
the weights are formed.

Inference: ``fuse_projections`` merges the self roles' U, V^C and W' (those that exist) into one
layer ``qkv_proj`` with the stacked weights, so that one product serves all three.

Test-time term removal: ``use_terms(mask)`` computes a subset of the constructed terms with the
same parameters ("0000": uniform weights over the allowed keys); ``term_logits`` returns each
enabled term's scaled logits separately. Both serve analysis of trained models.

Computation (Transformer-XL merge): E1 + E3 = (q + u)·k and E2 + E4 = (q + v)·r. With E1 on, the
result is ``scaled_dot_product_attention(q + u, k, v)`` with an additive float bias holding E2/E4 and
the masks ("1000" passes only ``is_causal`` or a bool mask). E2/E4 are computed against the table of
the L relative offsets that can occur (at most T + S - 1, at most 2w + 1 with a window) and gathered
to (T, S); E3 alone is a per-key bias (B, H, 1, S); E4 alone a per-offset bias (H, T, S) shared by
the batch. "0010" outside the decoder, without window, gives every query the same weights and is
computed once per sentence.

Offsets. Self-attention uses k - q. Cross-attention (source key k, target query q) uses
``offset=plain`` (default, the paper's definition): k - q; or ``offset=aligned``:
k - round(q * S / T_hat), where S is the sentence's true (unpadded) source length and
T_hat = max(1, round(ratio * S)) an *estimated* target length (option ``ratio``, default 1.0).
The true target length T is deliberately not used: it would leak the output length into training,
beam search cannot know it, and incremental decoding must equal full decoding. Rounding is half-up,
in exact integer arithmetic. Aligned offsets assume right padding (real tokens first).

Window ``w``: keys with |offset| > w are masked (decoder: keys in [q - w, q]); cross-attention
uses the configured offset. A query left with no valid key (e.g. a target position beyond the
source plus w) reads nothing: its output is 0, without NaN.

FLOPs (``flops``) count the computation actually done, multiply-add = 2; masked (q, k) pairs are
still computed (dense logits); see ``FactoredAttention.flops``.

Where the parts live: this module holds the parameters, the options and the order of the work
(projections, terms, attention, output); ``nmt.modules.factored_terms`` the E2/E4 offset table and
the E3 key bias (used by the logits and by ``term_logits`` alike); ``nmt.modules.relative_offsets``
the reference points and allowed pairs; ``nmt.modules.attention_paths`` the fused, explicit and
decoding-step attention; ``nmt.modules.merge`` the merged projections of ``fuse_projections``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from nmt.modules import relative_offsets as rel
from nmt.modules.attention_paths import allowed_keys, attend, attend_step
from nmt.modules.base import Mixer, Role, extend_cache, linear_flops, softmax_flops
from nmt.modules.factored_terms import (
    FactoredState,
    gather_offsets,
    key_scores,
    offset_index,
    offset_rows,
    project_offsets,
    relative_table,
    split_heads,
)
from nmt.modules.merge import stack_linears
from nmt.modules.options import MASK, NOT_AN_OPTION, BuildContext, MechanismOptions, register
from nmt.modules.spec import MASK_RE

OFFSETS = ("plain", "aligned")


class FactoredAttention(Mixer):
    """Multi-head attention over the enabled terms of ``mask`` ("1000" = standard attention)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        role: Role,
        mask: str = "1000",
        *,
        window: int | None = None,
        offset: str = "plain",
        ratio: float = 1.0,
        dropout: float = 0.0,
        qk_bias: bool = False,
    ) -> None:
        super().__init__(d_model, role)
        if not MASK_RE.match(mask) or mask == "0000":
            raise ValueError(f"factor mask must be 4 characters of 0/1 with at least one 1, got {mask!r}")
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        if window is not None and window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        if offset not in OFFSETS:
            raise ValueError(f"offset must be one of {OFFSETS}, got {offset!r}")
        if offset != "plain" and role != "cross":
            raise ValueError("offset=aligned applies to cross-attention only")
        if ratio <= 0:
            raise ValueError(f"ratio must be > 0, got {ratio}")
        self.mask = mask  # the terms whose parameters exist
        self.qk_bias = qk_bias
        self.e1, self.e2, self.e3, self.e4 = (c == "1" for c in mask)  # the terms computed
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.scale = self.d_head**-0.5
        self.window = window
        self.offset = offset
        self.ratio = ratio
        self.dropout = dropout

        self.q_proj = nn.Linear(d_model, d_model, bias=qk_bias) if (self.e1 or self.e2) else None  # U
        self.k_proj = nn.Linear(d_model, d_model, bias=qk_bias) if (self.e1 or self.e3) else None  # V^C
        self.r_proj = nn.Linear(d_model, d_model, bias=False) if (self.e2 or self.e4) else None  # V^R
        self.u = nn.Parameter(torch.randn(n_heads, self.d_head) * 0.02) if self.e3 else None
        self.v = nn.Parameter(torch.randn(n_heads, self.d_head) * 0.02) if self.e4 else None
        self.v_proj = nn.Linear(d_model, d_model)  # W'
        self.out_proj = nn.Linear(d_model, d_model)  # W
        self.qkv_proj: nn.Linear | None = None  # U, V^C, W' as one layer after ``fuse_projections``
        self._fused: tuple[str, ...] = ()  # which of "q", "k", "v" qkv_proj computes, in order

    def extra_repr(self) -> str:
        bias = ", qk_bias=True" if self.qk_bias else ""
        return (f"mask={self.mask}, role={self.role}, heads={self.n_heads}, window={self.window}, "
                f"offset={self.offset}{bias}")

    @property
    def active_mask(self) -> str:
        """The terms computed now: ``mask`` unless ``use_terms`` selected a subset."""
        return "".join("1" if e else "0" for e in (self.e1, self.e2, self.e3, self.e4))

    def use_terms(self, mask: str | None) -> None:
        """Compute only the terms of ``mask`` (a subset of the constructed mask; "0000" = uniform
        weights over the allowed keys), with the same parameters; None restores every term."""
        mask = self.mask if mask is None else mask
        if not MASK_RE.match(mask) or any(m == "1" and c == "0" for m, c in zip(mask, self.mask)):
            raise ValueError(f"use_terms: {mask!r} is not a subset of this layer's mask {self.mask}")
        self.e1, self.e2, self.e3, self.e4 = (c == "1" for c in mask)

    @property
    def query_independent(self) -> bool:
        """True when every query has the same weights (only E3 or nothing computed, without
        causality or window)."""
        return not (self.e1 or self.e2 or self.e4) and self.role != "decoder" and self.window is None

    @property
    def _needs_keys(self) -> bool:
        return self.e1 or self.e3

    def fuse_projections(self) -> int:
        """Inference only: for the self roles, merge the projections of the same input (U, V^C, W'
        as far as they exist) into one linear layer ``qkv_proj`` with their stacked weights (a
        missing bias stacked as zeros, which adds nothing); return how many layers were merged away."""
        if self.role == "cross" or self.qkv_proj is not None:
            return 0
        parts = [(n, m) for n, m in (("q", self.q_proj), ("k", self.k_proj), ("v", self.v_proj)) if m is not None]
        if len(parts) < 2:
            return 0
        self.qkv_proj, self._fused = stack_linears([m for _, m in parts]), tuple(n for n, _ in parts)
        self.q_proj = self.k_proj = self.v_proj = None
        return len(parts) - 1

    def _queries(self, x: Tensor) -> Tensor | None:
        """Query heads (B, H, T, dh) of ``x`` when a term needs them (E1, E2), else None."""
        return self._heads(self.q_proj(x)) if (self.e1 or self.e2) else None

    def _keys_values(self, src: Tensor) -> tuple[Tensor | None, Tensor]:
        """Key heads (if E1 or E3 needs them, else None) and value heads of ``src``: (B, H, S, dh) each."""
        k = self._heads(self.k_proj(src)) if self._needs_keys else None
        return k, self._heads(self.v_proj(src))

    def _self_projections(self, x: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor]:
        """Queries, keys and values of ``x`` for self-attention (as ``_queries``, ``_keys_values``)."""
        if self.qkv_proj is None:
            return self._queries(x), *self._keys_values(x)
        heads = dict(zip(self._fused, (self._heads(c) for c in self.qkv_proj(x).split(self.d_model, -1))))
        q = heads["q"] if (self.e1 or self.e2) else None
        k = heads["k"] if self._needs_keys else None
        return q, k, heads["v"]

    # ----------------------------------------------------------------------------------------------
    # Public interface

    def forward(
        self,
        x: Tensor,
        *,
        padding_mask: Tensor | None = None,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """``x`` (B, T, D) -> (B, T, D); keys are ``x`` (self roles) or ``memory`` (cross)."""
        src, key_pad = self.keys_of(x, padding_mask, memory, memory_padding_mask)
        if self.role == "cross":
            q, (k, v) = self._queries(x), self._keys_values(src)  # (B, H, T or S, dh)
        else:
            q, k, v = self._self_projections(x)  # (B, H, T, dh)
        q_pos = torch.arange(x.size(1), device=x.device)  # (T,)
        return self._mix(x, q, q_pos, k, v, key_pad, state=None)

    def step(
        self,
        x_t: Tensor,
        state: FactoredState | None,
        *,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> tuple[Tensor, FactoredState]:
        """Queries ``x_t`` (B, n, D) at time ``state.t`` -> (B, n, D), O(S) per step; n = 1 for
        the decoder role, n >= 1 rows of one sentence for the cross role (``Mixer.step``; the
        state's fields: ``FactoredState``)."""
        if self.role == "encoder":
            raise RuntimeError("encoder self-attention is not decoded incrementally")
        state = FactoredState() if state is None else state.copy()
        t = state.t
        if self.role == "decoder":
            q, k_t, v_t = self._self_projections(x_t)  # (B, H, 1, dh)
            k = None
            if k_t is not None:
                state.k, k = extend_cache(state.k, k_t)  # type: ignore[arg-type]  (B, H, t+1, dh)
            state.v, v = extend_cache(state.v, v_t)  # type: ignore[arg-type]  (B, H, t+1, dh)
        else:
            if state.v is None:
                if memory is None:
                    raise ValueError("cross-attention needs memory on the first decoding step")
                k, v = self._keys_values(memory)  # (B, H, S, dh)
                # laid out once for every later step's products: keys as (B, H, dh, S), values as
                # (B, H, S, dh) (read strided, each product is slower)
                if k is not None:
                    state.k = k.transpose(-1, -2).contiguous().transpose(-1, -2)
                state.v = v.contiguous()
                state.memory_padding_mask = memory_padding_mask
            q, k, v = self._queries(x_t), state.k, state.v
        key_pad = state.memory_padding_mask
        q_pos = torch.full((x_t.size(1),), t, device=x_t.device)  # (n,)
        y = self._mix(x_t, q, q_pos, k, v, key_pad, state=state)
        state.t = t + 1
        return y, state

    def flops(self, tgt_len: int, src_len: int | None = None) -> int:
        """Forward FLOPs for one sentence (multiply-add = 2), counting what ``forward`` computes per
        sentence; the tables that depend only on parameters and lengths are ``shared_flops``.

        With D = d_model, H heads, T queries, S keys (S = T for self roles), L relative offsets in
        the table (``offset_range``), and Tq = 1 if ``query_independent`` else T::

            projections  q: 2TD^2 if E1|E2       k: 2SD^2 if E1|E3       v: S(2D^2+D)
                         (+TD, +SD for the biases of ``qk_bias``)        out: Tq(2D^2+D)
            content      E1: 2TSD (+ TD to add u if E3)   else E3: 2SD (u·k per key)
            relative     E2: 2TLD (+ TD to add v if E4)   (E4 alone: in ``shared_flops``)
            combine      H Tq S when both a content and a relative score exist
            softmax      3 H Tq S (exp, sum, divide: ``base.softmax_flops``)
            weighted sum 2 Tq S D

        Masked pairs (causality, window, padding) are computed then masked, so they count.
        """
        T = tgt_len
        S = src_len if (self.role == "cross" and src_len is not None) else T
        D, H = self.d_model, self.n_heads
        Tq = 1 if self.query_independent else T
        total = linear_flops(S, D, D) + linear_flops(Tq, D, D)  # values, output
        if self.e1 or self.e2:
            total += linear_flops(T, D, D, bias=self.qk_bias)
        if self._needs_keys:
            total += linear_flops(S, D, D, bias=self.qk_bias)
        if self.e1:
            total += 2 * T * S * D + (T * D if self.e3 else 0)
        elif self.e3:
            total += 2 * S * D
        if self.e2:
            total += 2 * T * self._table_size(T, S) * D + (T * D if self.e4 else 0)
        if (self.e1 or self.e3) and (self.e2 or self.e4):
            total += H * Tq * S
        total += softmax_flops(H * Tq, S) + 2 * Tq * S * D
        return total

    def shared_flops(self, tgt_len: int, src_len: int | None = None) -> int:
        """FLOPs computed once per batch (per forward, or once per decoding run) for sentences up to
        these lengths: the projected relative table V^R R (2LD^2) and, for E4 without E2, the
        per-offset scores v·V^R R (2LD)."""
        if not (self.e2 or self.e4):
            return 0
        T = tgt_len
        S = src_len if (self.role == "cross" and src_len is not None) else T
        L = self._table_size(T, S)
        return linear_flops(L, self.d_model, self.d_model, bias=False) + (0 if self.e2 else 2 * L * self.d_model)

    def _table_size(self, T: int, S: int) -> int:
        """L: the number of relative offsets a batch of T queries over S keys can use."""
        q_last = torch.tensor([T - 1])
        centre_max = int(rel.centres_for_lengths(self.offset, self.ratio, q_last, torch.tensor([S])).max())
        lo, hi = self.offset_range(centre_max, S)
        return hi - lo + 1

    # ----------------------------------------------------------------------------------------------
    # Offsets and masks

    def centres(self, q_pos: Tensor, key_padding_mask: Tensor | None, src_len: int) -> Tensor:
        """Reference point c(q) of each query on the key axis -> (1 or B, T) long; offset = k - c(q)."""
        return rel.centres(self.offset, self.ratio, q_pos, key_padding_mask, src_len)

    def offset_range(self, centre_max: int, src_len: int) -> tuple[int, int]:
        """Smallest and largest relative offset that can be attended (window included)."""
        return rel.offset_range(self.role, self.window, centre_max, src_len)

    # ----------------------------------------------------------------------------------------------
    # Scores

    def _project_offsets(self, offsets: Tensor, like: Tensor) -> Tensor:
        """V^R R_offsets -> (1, H, L, dh) (``nmt.modules.factored_terms``; the CTranslate2 export reads it)."""
        return project_offsets(self.r_proj, self.n_heads, offsets, like)

    def _relative(
        self, centre: Tensor, S: int, state: FactoredState | None, batch: int, like: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The projected offset rows (Br, H, L, dh) the queries at ``centre`` (Bc, T) can use over S
        keys, and each pair's row (Bc, T, S) (``offset_index``)."""
        lo, hi = self.offset_range(int(centre.max()), S)
        r = offset_rows(self.r_proj, self.n_heads, lo, hi, state, batch, like)  # (Br, H, L, dh)
        return r, offset_index(centre, S, hi, r.size(2))

    def term_logits(
        self,
        x: Tensor,
        *,
        padding_mask: Tensor | None = None,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Each computed term's scaled logits over whole sequences, separately.

        Returns ({"E1": (B, H, T, S), ...} for the terms of ``active_mask``, allowed (B or 1, 1, T, S)
        bool). Their sum, masked by ``allowed``, is what ``forward`` normalises with the softmax.
        """
        src, key_pad = (memory, memory_padding_mask) if self.role == "cross" else (x, padding_mask)
        if src is None:
            raise ValueError("cross-attention needs memory (B, S, D)")
        B, T, _ = x.shape
        S = src.size(1)
        if self.role == "cross":
            q, k = self._queries(x), (self._heads(self.k_proj(src)) if self._needs_keys else None)  # (B, H, T or S, dh)
        else:
            q, k, _ = self._self_projections(x)  # (B, H, T, dh)
        q_pos = torch.arange(T, device=x.device)
        centre = self.centres(q_pos, key_pad, S)  # (Bc, T)
        allowed, causal = rel.allowed_pairs(self.role, self.window, centre, q_pos, S, key_pad)
        ok = torch.ones(1, 1, T, S, dtype=torch.bool, device=x.device)
        if causal:
            ok = ok.tril()
        if allowed is not None:
            ok = ok & allowed
        shape = (B, self.n_heads, T, S)
        terms: dict[str, Tensor] = {}
        if self.e1:
            terms["E1"] = (q @ k.transpose(-1, -2)) * self.scale
        if self.e2 or self.e4:
            r, index = self._relative(centre, S, None, B, x)  # (1, H, L, dh), (Bc, T, S)
            if self.e2:
                terms["E2"] = gather_offsets(relative_table(q, self.v, r, self.scale, True, False), index).expand(shape)
            if self.e4:
                terms["E4"] = gather_offsets(relative_table(None, self.v, r, self.scale, False, True), index).expand(shape)
        if self.e3:
            terms["E3"] = key_scores(self.u, k, self.scale).expand(shape)
        return dict(sorted(terms.items())), ok

    def _mix(
        self,
        x: Tensor,
        q: Tensor | None,
        q_pos: Tensor,
        k: Tensor | None,
        v: Tensor,
        key_pad: Tensor | None,
        state: FactoredState | None,
    ) -> Tensor:
        """Attention of queries ``x`` (B, T, D) (query heads ``q``) at positions ``q_pos`` over
        projected keys/values; ``state`` is the decoding state (None: whole sequences)."""
        B, T, _ = x.shape
        S = v.size(2)
        centre = None  # (Bc, T): only relative terms and windows use the reference points
        if self.e2 or self.e4 or self.window is not None:
            centre = self.centres(q_pos, key_pad, S)

        bias = None  # scaled, broadcastable to (B, H, T, S)
        if self.e2 or self.e4:
            r, index = self._relative(centre, S, state, B, x)  # (Br, H, L, dh), (Bc, T, S)
            bias = gather_offsets(relative_table(q, self.v, r, self.scale, self.e2, self.e4), index)
        if self.e3 and not self.e1:
            e3 = key_scores(self.u, k, self.scale)  # (B, H, 1, S)
            bias = e3 if bias is None else bias + e3
        qc = None
        if self.e1:
            qc = q + self.u[:, None] if self.e3 else q  # (B, H, T, dh)

        # whole sequences take the fused kernel; decoding steps are too small for it
        fused = state is None and qc is not None and not self.record_weights
        allowed, causal, row_ok = allowed_keys(self.role, self.window, centre, q_pos, S, key_pad, state,
                                               fused and bias is None)
        lean = state is not None and not self.training and qc is not None and bias is None
        if lean and row_ok is None and not causal:
            ctx, weights = attend_step(qc, k, v, allowed, state, scale=self.scale, record=self.record_weights)  # (B, H, T, dh)
        else:
            ctx, weights = attend(qc, k, v, bias, allowed, causal, row_ok, T, fused, scale=self.scale,
                                  dropout=self.dropout if self.training else 0.0, record=self.record_weights)
        if weights is not None:
            self.last_weights = weights
        y = self.out_proj(ctx.transpose(1, 2).flatten(2))  # (B, T or 1, D)
        if row_ok is not None:
            y = y * row_ok[:, 0]  # queries with no valid key read nothing
        return y.expand(B, T, self.d_model)

    def _heads(self, x: Tensor) -> Tensor:
        """(B, N, D) -> (B, H, N, dh)."""
        return split_heads(x, self.n_heads)


@register(MASK, ctranslate2=True, examples=(
    *("".join(bits) for bits in itertools.product("01", repeat=4) if "1" in bits),  # every mask
    "1111:w=2", "0101:w=1", "1010:w=0", "1000:proj_bias=1", "1111:proj_bias=1",
    "1111:offset=aligned,ratio=1.3", "0110:offset=aligned,w=1", "1000:w=1",
))
@dataclass(frozen=True)
class FactoredOptions(MechanismOptions):
    """Options of a mask term, e.g. "1111:w=8", "1000:offset=aligned,ratio=1.1", "1000:proj_bias=1"
    (biased query/key projections as a standard Transformer: "1000" plus an implicit E3 term)."""

    mask: str = field(default="1000", metadata=NOT_AN_OPTION)  # the term's name
    w: int | None = None  # window: keys with |offset| > w are masked
    offset: Literal["plain", "aligned"] | None = None  # cross-attention only; None = plain
    ratio: float | None = None  # offset=aligned only; None = 1.0
    proj_bias: bool = False  # biased U and V^C (adds an implicit E3, and E4 with E2)

    @property
    def label(self) -> str:
        return self.mask

    @classmethod
    def from_name(cls, name: str) -> dict[str, str]:
        return {"mask": name}

    def __post_init__(self) -> None:
        if not MASK_RE.match(self.mask) or self.mask == "0000":
            self.fail("is not a factor mask with at least one enabled term")
        if self.w is not None and self.w < 0:
            self.fail(f"option w={self.w} must be >= 0")
        if self.ratio is not None and not self.ratio > 0:
            self.fail(f"option ratio={self.ratio} must be a positive number")

    def check(self, ctx: BuildContext) -> None:
        misplaced = [k for k in ("offset", "ratio") if getattr(self, k) is not None]
        if ctx.role != "cross" and misplaced:
            self.fail(f"option(s) {', '.join(misplaced)} apply to cross-attention only, not to {ctx.role} self-attention")
        if self.ratio is not None and self.offset != "aligned":
            self.fail("option ratio applies only with offset=aligned")
        if ctx.d_model % ctx.n_heads:
            self.fail(f"d_model={ctx.d_model} is not divisible by n_heads={ctx.n_heads}")

    def sees_order(self) -> bool:
        """A mask sees word order through its relative-position terms E2 and E4."""
        return self.mask[1] == "1" or self.mask[3] == "1"

    def build(self, ctx: BuildContext) -> FactoredAttention:
        """Factored attention for this mask term in its layer (checked against ``ctx``)."""
        self.check(ctx)
        return FactoredAttention(
            ctx.d_model,
            ctx.n_heads,
            ctx.role,
            self.mask,
            window=self.w,
            offset=self.offset or "plain",
            ratio=1.0 if self.ratio is None else self.ratio,
            dropout=ctx.dropout,
            qk_bias=self.proj_bias,
        )
