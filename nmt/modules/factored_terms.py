"""The scores of factored attention's terms that are not a plain query-key product (see
``nmt.modules.factored_attention`` for the formulas): E2 and E4 through a table of projected relative
offsets, and E3 alone as a per-key bias. ``FactoredAttention`` composes them into its logits, and
``term_logits`` (analysis) reads them term by term from the same functions.

Relative offsets: the L offsets a batch can use are projected once, V^R R, as rows hi, hi-1, ..., lo
(``offset_rows``; cached in the decoding state and extended with new offsets only). A per-offset
score table (..., L) becomes per-pair scores (..., T, S) by ``gather_offsets`` with the index
``offset_index`` (the row j = hi - (k - c(q)) of each pair).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nmt.modules.base import MixerState, TimeCache
from nmt.modules.positions import sinusoidal_table


@dataclass(eq=False)
class FactoredState(MixerState):
    """Factored attention's decoding state. Decoder: the prefix's keys and values (``TimeCache``,
    (B, H, t, dh)); cross: the memory's, projected on the first step (B, H, S, dh), its padding mask,
    and without a window the allowed keys (``allowed``, ``rows_with_keys``, ``additive``: the same
    at every step). Both: ``r``, the projected offset rows seen so far (B, H, L, dh) for E2/E4."""

    k: TimeCache | Tensor | None = None
    v: TimeCache | Tensor | None = None
    r: Tensor | None = None
    memory_padding_mask: Tensor | None = None
    allowed: Tensor | None = None
    rows_with_keys: Tensor | None = None
    additive: Tensor | None = None
    steady: bool = False  # ``allowed`` and ``rows_with_keys`` are set (cross without a window)


def split_heads(x: Tensor, n_heads: int) -> Tensor:
    """(B, N, D) -> (B, H, N, dh)."""
    B, N, D = x.shape
    return x.view(B, N, n_heads, D // n_heads).transpose(1, 2)


def project_offsets(r_proj: nn.Linear, n_heads: int, offsets: Tensor, like: Tensor) -> Tensor:
    """V^R R_offsets for ``offsets`` (L,) -> (1, H, L, dh), in ``like``'s dtype."""
    R = sinusoidal_table(offsets, r_proj.in_features, dtype=like.dtype)  # (L, D)
    return split_heads(r_proj(R)[None], n_heads)


def offset_rows(
    r_proj: nn.Linear, n_heads: int, lo: int, hi: int, state: FactoredState | None, batch: int, like: Tensor
) -> Tensor:
    """Projected R for offsets hi, hi-1, ..., lo (at least) -> (1 or B, H, L, dh).

    When decoding (``state`` given), rows are cached in ``state.r`` and only new offsets are projected.
    """
    dev = like.device
    if state is None:
        return project_offsets(r_proj, n_heads, torch.arange(hi, lo - 1, -1, device=dev), like)
    cached = state.r
    n = 0 if cached is None else cached.size(2)
    if hi - n >= lo:
        new = project_offsets(r_proj, n_heads, torch.arange(hi - n, lo - 1, -1, device=dev), like)
        new = new.expand(batch, -1, -1, -1)  # (B, H, m, dh)
        cached = new.contiguous() if cached is None else torch.cat([cached, new], dim=2)
        state.r = cached
    return cached


def offset_index(centre: Tensor, S: int, hi: int, rows: int) -> Tensor:
    """The table row of each (query, key) pair: hi - (k - c(q)), clamped to the ``rows`` rows -> (Bc, T, S)."""
    k_pos = torch.arange(S, device=centre.device)
    return (hi - (k_pos - centre[..., None])).clamp(0, rows - 1)


def relative_table(q: Tensor | None, v: Tensor | None, r: Tensor, scale: float, e2: bool, e4: bool) -> Tensor:
    """Scaled per-offset scores: E2 (+E4) = (q + v)·r for queries ``q`` (B, H, T, dh) -> (B, H, T, L),
    or E4 alone = v·r -> (Br, H, 1, L); ``r`` (Br, H, L, dh), ``v`` (H, dh)."""
    if e2:
        qv = q + v[:, None] if e4 else q  # type: ignore[index,operator]  (B, H, T, dh)
        return (qv * scale) @ r.transpose(-1, -2)  # type: ignore[operator]
    return (v[None, :, None] * scale) @ r.transpose(-1, -2)  # type: ignore[index]


def gather_offsets(table: Tensor, index: Tensor) -> Tensor:
    """Per-offset scores (Bt, H, T or 1, L) -> per pair (max(Bt, Bc), H, T, S) by ``index`` (Bc, T, S)."""
    Bc, T, S = index.shape
    Bg = max(table.size(0), Bc)
    table = table.expand(Bg, -1, T, -1)  # (Bg, H, T, L)
    return table.gather(-1, index[:, None].expand(Bg, table.size(1), T, S))  # (Bg, H, T, S)


def key_scores(u: Tensor, k: Tensor, scale: float) -> Tensor:
    """Scaled E3 = u·k, the same for every query: ``u`` (H, dh), keys (B, H, S, dh) -> (B, H, 1, S)."""
    return (u[None, :, None] * scale) @ k.transpose(-1, -2)
