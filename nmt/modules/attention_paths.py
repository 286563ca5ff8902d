"""The three ways factored attention turns scores into mixed values, and the keys each query may read.

- ``attend`` with ``fused``: one ``scaled_dot_product_attention`` call for whole sequences (E2-E4 and
  the masks as an additive bias);
- ``attend`` otherwise: explicit logits, softmax and weighted sum (any terms; recorded weights;
  decoding steps with a relative bias);
- ``attend_step``: an inference decoding step with a content term and nothing else, in three
  batched products (for a few queries SDPA's CPU kernel is slower, docs/benchmarks.md).

All take projected heads: queries ``qc`` (B, H, T, dh) with E3's u already added, keys and values
(B, H, S, dh), and return the softmax-weighted values (B, H, T or 1, dh) plus the weights when asked
to record them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nmt.modules import relative_offsets as rel
from nmt.modules.factored_terms import FactoredState


def allowed_keys(
    role: str,
    window: int | None,
    centre: Tensor | None,
    q_pos: Tensor,
    S: int,
    key_pad: Tensor | None,
    state: FactoredState | None,
    keep_causal: bool,
) -> tuple[Tensor | None, bool, Tensor | None]:
    """The pairs a query may attend: (allowed (Bm, 1, T, S) bool or None = all; whether plain
    causality is left to the fused kernel, only when ``keep_causal``; the queries that have an
    allowed key (Bm, 1, T, 1), None when all have one). A query without any is given all keys
    so that the softmax stays finite; the caller zeroes its output.

    Cross-attention without a window allows the same keys at every decoding step: they are
    computed on the first step and kept in ``state`` (``allowed``, ``rows_with_keys``)."""
    steady = state is not None and role == "cross" and window is None
    if steady and state.steady:  # type: ignore[union-attr]
        return state.allowed, False, state.rows_with_keys  # type: ignore[union-attr]
    allowed, causal = rel.allowed_pairs(role, window, centre, q_pos, S, key_pad)
    if causal and not keep_causal:
        T = q_pos.numel()
        allowed = torch.ones(T, S, dtype=torch.bool, device=q_pos.device).tril()[None, None]
        causal = False
    row_ok = None
    if allowed is not None:
        row_ok = allowed.any(-1, keepdim=True)  # (Bm, 1, T, 1)
        if bool(row_ok.all()):
            row_ok = None
        else:
            allowed = allowed | ~row_ok
    if steady:
        state.allowed, state.rows_with_keys, state.steady = allowed, row_ok, True  # type: ignore[union-attr]
    return allowed, causal, row_ok


def attend(
    qc: Tensor | None,
    k: Tensor | None,
    v: Tensor,
    bias: Tensor | None,
    allowed: Tensor | None,
    causal: bool,
    row_ok: Tensor | None,
    T: int,
    fused: bool,
    *,
    scale: float,
    dropout: float,
    record: bool,
) -> tuple[Tensor, Tensor | None]:
    """Softmax-weighted values (B, H, T or 1, dh) of T queries under ``allowed`` (``allowed_keys``),
    and the weights (B, H, T, S) when ``record`` (explicit path only). ``qc`` None: no content term
    (the bias alone, or uniform weights); ``bias`` scaled, broadcastable to (B, H, T, S); ``dropout``
    the probability in effect (0 outside training)."""
    B, H, S, _ = v.shape
    p = dropout
    if fused:
        mask = allowed
        if bias is not None:
            mask = bias if allowed is None else torch.where(allowed, bias, float("-inf"))
        return F.scaled_dot_product_attention(qc, k, v, attn_mask=mask, dropout_p=p, is_causal=causal), None

    if qc is not None:
        logits = (qc @ k.transpose(-1, -2)) * scale  # type: ignore[union-attr]  (B, H, T, S)
        if bias is not None:
            logits = logits + bias
    else:  # no content term: the bias alone, or uniform weights
        logits = bias if bias is not None else v.new_zeros(1, 1, 1, S)
    if allowed is not None:
        logits = torch.where(allowed, logits, float("-inf"))
    probs = logits.softmax(-1)  # (B or 1, H, T or 1, S)
    if row_ok is not None:
        probs = probs * row_ok
    weights = probs.detach().expand(B, H, T, S) if record else None
    if p > 0:
        probs = F.dropout(probs.expand(B, H, T, S), p)
    return probs @ v, weights


def attend_step(
    qc: Tensor, k: Tensor, v: Tensor, allowed: Tensor | None, state: FactoredState, *, scale: float, record: bool
) -> tuple[Tensor, Tensor | None]:
    """``attend``'s explicit path for an inference decoding step with a content term and nothing
    else (no relative bias, every query with a key, no dropout), in fewer operations: three batched
    products over (B*H) heads, the scale and the masked keys folded into the first. Softmax-weighted
    values (B, H, T, dh), and the weights (B, H, T, S) when ``record``. The additive form of
    ``allowed`` (0 or -inf, (B, H, 1 or T, S)) is kept in ``state`` when ``allowed`` is itself kept
    there (cross)."""
    B, H, T, dh = qc.shape
    S = v.size(2)
    q = qc.reshape(B * H, T, dh)  # a view when T = 1
    keys = k.transpose(-1, -2).reshape(B * H, dh, S)  # a view of the cache or the stored keys
    if allowed is None:
        logits = torch.bmm(q, keys).mul_(scale)  # (B*H, T, S)
    else:
        kept = state.allowed is allowed
        additive = state.additive if kept else None
        if additive is None:
            additive = torch.zeros(allowed.shape, dtype=qc.dtype, device=qc.device).masked_fill_(~allowed, float("-inf"))
            additive = additive.expand(B, H, -1, S).contiguous()  # (B, H, 1 or T, S)
            if kept:
                state.additive = additive
        logits = torch.baddbmm(additive.view(B * H, -1, S), q, keys, alpha=scale)  # (B*H, T, S)
    probs = logits.softmax(-1)
    weights = probs.detach().view(B, H, T, S) if record else None
    return torch.bmm(probs, v.reshape(B * H, S, dh)).view(B, H, T, dh), weights
