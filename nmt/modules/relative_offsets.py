"""Relative-offset geometry of factored attention: query reference points, the range of offsets a
query can see, and the mask of allowed (query, key) pairs.

Self roles use offset k - q. Cross-attention uses ``plain`` (k - q) or ``aligned``
(k - round(q * S / T_hat), S the true source length, T_hat = max(1, round(ratio * S)); see
``nmt.modules.factored_attention``). A window ``w`` keeps pairs with |k - c(q)| <= w; the decoder is
causal.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nmt.modules.positions import estimated_target_length


def centres(offset: str, ratio: float, q_pos: Tensor, key_padding_mask: Tensor | None, src_len: int) -> Tensor:
    """Reference point c(q) of each query on the key axis -> (1 or B, T) long; offset = k - c(q)."""
    if offset == "plain":
        return centres_for_lengths(offset, ratio, q_pos, None)
    if key_padding_mask is None:
        lengths = torch.full((1,), src_len, device=q_pos.device)
    else:
        lengths = (~key_padding_mask).sum(-1)  # (B,)
    return centres_for_lengths(offset, ratio, q_pos, lengths)


def centres_for_lengths(offset: str, ratio: float, q_pos: Tensor, lengths: Tensor | None) -> Tensor:
    """c(q) given the true source lengths (B,) (None: plain offsets) -> (1 or B, T)."""
    if offset == "plain" or lengths is None:
        return q_pos.unsqueeze(0)  # (1, T)
    t_hat = estimated_target_length(lengths, ratio)[:, None]  # (B, 1)
    # round(q * S / T_hat), half-up, in exact integers.
    return (2 * q_pos[None, :] * lengths[:, None] + t_hat) // (2 * t_hat)  # (B, T)


def offset_range(role: str, window: int | None, centre_max: int, src_len: int) -> tuple[int, int]:
    """Smallest and largest relative offset that can be attended (window included)."""
    hi = 0 if role == "decoder" else src_len - 1
    lo = -centre_max
    if window is not None:
        lo, hi = max(lo, -window), min(hi, window)
    return min(lo, hi), hi


def allowed_pairs(
    role: str, window: int | None, centre: Tensor | None, q_pos: Tensor, S: int, key_pad: Tensor | None
) -> tuple[Tensor | None, bool]:
    """Bool (B or 1, 1, T, S) of allowed pairs, or None; plus whether plain causality remains
    (to be applied by the caller, e.g. SDPA's ``is_causal``). ``centre`` (Bc, T) is needed only
    with a window."""
    causal = role == "decoder" and q_pos.numel() > 1
    parts = []
    if key_pad is not None:
        parts.append(~key_pad[:, None, None, :])  # (B, 1, 1, S)
    if window is not None:
        if centre is None:
            raise ValueError("allowed_pairs: a window needs the queries' reference points (centre)")
        offsets = torch.arange(S, device=centre.device) - centre[..., None]  # (Bc, T, S)
        parts.append((offsets.abs() <= window)[:, None])  # (Bc, 1, T, S)
    if not parts:
        return None, causal
    if causal:
        k_pos = torch.arange(S, device=q_pos.device)
        parts.append((k_pos[None, :] <= q_pos[:, None])[None, None])  # (1, 1, T, S)
    allowed = parts[0]
    for p in parts[1:]:
        allowed = allowed & p
    return allowed, False
