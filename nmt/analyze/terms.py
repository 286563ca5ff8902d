"""Attribution of attention logits to the terms E1-E4: variance over keys and entropies.

For one query q of one head, with A(q) its allowed keys (padding, causality, window removed) and
E_i(q, k) the scaled logit of term i, the logit is L = sum_i E_i and over k in A(q)::

    Var(L) = sum_i Var(E_i) + 2 sum_{i<j} Cov(E_i, E_j)

Only variation across keys changes the softmax (a constant per query cancels), so Var(E_i) is
how much term i moves the weights of that query. ``TermStats`` sums the per-query covariance
matrices over the real (non-padding) queries with at least one allowed key and every head, and
reports, averaged over those (query, head) pairs:

- ``variance[i]``: mean Var(E_i); ``share[i]`` = sum_q Var_q(E_i) / sum_q Var_q(L);
- ``covariance_share`` = 2 sum_q sum_{i<j} Cov_q(E_i, E_j) / sum_q Var_q(L), so that the shares and
  the covariance part add up to 1 exactly (a negative covariance part: terms that cancel);
- ``entropy[i]``: mean entropy (nats) of softmax(E_i) over A(q), the weights the term alone would
  give; ``entropy_all`` of softmax(L), the model's weights; ``entropy_uniform``: mean log |A(q)|.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class TermStats:
    """Running sums over (query, head) pairs for one attention module with terms ``terms``."""

    terms: tuple[str, ...]
    pairs: int = 0
    cov: Tensor = field(default=None)  # type: ignore[assignment]  # (n, n) float64
    entropy_sum: Tensor = field(default=None)  # type: ignore[assignment]  # (n,) float64
    entropy_all_sum: float = 0.0
    entropy_uniform_sum: float = 0.0

    def __post_init__(self) -> None:
        n = len(self.terms)
        if self.cov is None:
            self.cov = torch.zeros(n, n, dtype=torch.float64)
        if self.entropy_sum is None:
            self.entropy_sum = torch.zeros(n, dtype=torch.float64)

    def add(self, terms: dict[str, Tensor], allowed: Tensor, query_real: Tensor | None = None) -> None:
        """Add a batch: ``terms`` {"E1": (B, H, T, S), ...} (the keys of ``self.terms``), ``allowed``
        (B or 1, 1, T, S) bool, ``query_real`` (B, T) bool (None: every query is real)."""
        if tuple(terms) != self.terms:
            raise ValueError(f"expected terms {self.terms}, got {tuple(terms)}")
        E = torch.stack([terms[t].detach().double() for t in self.terms])  # (n, B, H, T, S)
        n, B, H, T, S = E.shape
        ok = allowed.expand(B, 1, T, S)
        keys = ok.sum(-1)  # (B, 1, T) allowed keys per query
        valid = keys > 0
        if query_real is not None:
            valid = valid & query_real[:, None]
        w = (ok & valid[..., None]).double()  # (B, 1, T, S): 1 on the counted (query, key) pairs
        size = keys.clamp(min=1).double()  # (B, 1, T)
        mean = (E * w).sum(-1) / size  # (n, B, H, T)
        centred = (E - mean[..., None]) * w / size[..., None].sqrt()  # (n, B, H, T, S)
        flat = centred.reshape(n, -1)
        self.cov += flat @ flat.T
        vmask = valid.expand(B, H, T)
        self.entropy_sum += entropy(E, ok)[:, vmask].sum(-1)
        self.entropy_all_sum += float(entropy(E.sum(0), ok)[vmask].sum())
        self.entropy_uniform_sum += float(size.log().expand(B, H, T)[vmask].sum())
        self.pairs += int(vmask.sum())

    def result(self) -> dict[str, Any]:
        """Averages and shares (see the module docstring); shares are None when the logits never vary."""
        count = max(self.pairs, 1)
        total = float(self.cov.sum())
        diag = self.cov.diagonal()
        varies = total > 1e-12 * max(1.0, float(diag.abs().sum()))
        covariance = {
            f"{a},{b}": 2 * float(self.cov[i, j]) / count
            for i, a in enumerate(self.terms) for j, b in enumerate(self.terms) if i < j
        }
        return {
            "terms": list(self.terms),
            "pairs": self.pairs,
            "variance": {t: float(diag[i]) / count for i, t in enumerate(self.terms)},
            "variance_all": total / count,
            "covariance": covariance,
            "share": {t: (float(diag[i]) / total if varies else None) for i, t in enumerate(self.terms)},
            "covariance_share": (total - float(diag.sum())) / total if varies else None,
            "entropy": {t: float(self.entropy_sum[i]) / count for i, t in enumerate(self.terms)},
            "entropy_all": self.entropy_all_sum / count,
            "entropy_uniform": self.entropy_uniform_sum / count,
        }


def entropy(logits: Tensor, allowed: Tensor) -> Tensor:
    """Entropy (nats) of softmax(``logits`` (..., T, S)) over the ``allowed`` keys -> (..., T);
    rows without an allowed key give 0."""
    p = logits.masked_fill(~allowed, float("-inf")).softmax(-1).nan_to_num(0.0)
    return torch.special.entr(p).sum(-1)


def dominant_term(result: dict[str, Any]) -> tuple[str, float] | None:
    """The term with the largest variance share and that share, or None if the logits never vary."""
    shares = {t: s for t, s in result["share"].items() if s is not None and math.isfinite(s)}
    if not shares:
        return None
    best = max(shares, key=shares.__getitem__)
    return best, shares[best]
