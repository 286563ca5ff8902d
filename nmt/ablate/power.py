"""How many seeds an equivalence claim needs: the power of the paired TOST when A and B are equal.

With ``n`` seeds, paired differences ``d_k ~ N(0, sd^2)`` (true difference zero), sample mean ``D``
and sample SD ``S``, the TOST at margin ``m`` and level ``alpha`` declares equivalence when
``|D| + t_{1-alpha, n-1} S / sqrt(n) < m``. ``D`` and ``S`` are independent, so its power is

    power = E_S[ 2 Phi((m - t S / sqrt(n)) sqrt(n) / sd) - 1 ]   over  S < m sqrt(n) / t,

an integral over the chi distribution of ``S sqrt(n - 1) / sd`` (evaluated here by Simpson's rule;
exact up to quadrature error ~1e-6). ``seeds_for_power`` is the smallest ``n`` (at least
``min_seeds``) whose power reaches the target. ``one_sided_power`` is the same integral for a
directional test (``worse``, ``not_worse``, ``better``) whose true difference lies ``beyond`` BLEU past
its margin in the claimed direction: it declares the claim when ``D`` clears the margin by
``t S / sqrt(n)``, so its power is ``E_S[ Phi((beyond - t S / sqrt(n)) sqrt(n) / sd) ]``.
"""

from __future__ import annotations

import math
from typing import Callable

from nmt.ablate.tdist import norm_cdf, t_ppf


def tost_power(n: int, sd: float, margin: float, alpha: float = 0.05, steps: int = 4000) -> float:
    """Probability that the paired TOST at ``margin`` declares equivalence with ``n`` seeds when
    the true mean difference is 0 and the seed-to-seed SD of a paired difference is ``sd``."""
    if n < 2:
        raise ValueError(f"tost_power: a t test needs at least 2 seeds, got {n}")
    if sd <= 0 or margin <= 0:
        raise ValueError(f"tost_power: sd and margin must be positive, got sd={sd}, margin={margin}")
    return _over_sample_sd(n, sd, alpha, margin, lambda z: 2.0 * norm_cdf(z) - 1.0, steps, truncate=True)


def one_sided_power(n: int, sd: float, beyond: float, alpha: float = 0.05, steps: int = 4000) -> float:
    """Probability that a one-sided paired t test at level ``alpha`` clears its margin with ``n``
    seeds when the true difference lies ``beyond`` (> 0) past the margin in the tested direction."""
    if n < 2:
        raise ValueError(f"one_sided_power: a t test needs at least 2 seeds, got {n}")
    if sd <= 0 or beyond <= 0:
        raise ValueError(f"one_sided_power: sd and beyond must be positive, got sd={sd}, beyond={beyond}")
    return _over_sample_sd(n, sd, alpha, beyond, norm_cdf, steps, truncate=False)


def _over_sample_sd(n: int, sd: float, alpha: float, room: float, success: Callable[[float], float], steps: int,
                    truncate: bool) -> float:
    """E_S[success((room - t S / sqrt(n)) sqrt(n) / sd)] over the sample SD S; with ``truncate`` only
    over S < room sqrt(n) / t (where the TOST interval can fit between the margins at all)."""
    df = n - 1
    t = t_ppf(1.0 - alpha, df)
    root_n = math.sqrt(n)
    # W = S sqrt(df) / sd follows the chi distribution with df degrees of freedom
    log_norm = math.log(2.0) - (df / 2.0) * math.log(2.0) - math.lgamma(df / 2.0)
    w_fit = room * root_n / t * math.sqrt(df) / sd  # beyond it the TOST interval cannot fit
    w_max = w_fit if truncate else math.sqrt(df) + 12.0  # else: all of the chi density that matters

    def integrand(w: float) -> float:
        if w <= 0.0:
            density = math.exp(log_norm) if df == 1 else 0.0
        else:
            density = math.exp(log_norm + (df - 1) * math.log(w) - w * w / 2.0)
        s = w * sd / math.sqrt(df)
        return success((room - t * s / root_n) * root_n / sd) * density

    h = w_max / steps
    total = integrand(0.0) + integrand(w_max)
    for i in range(1, steps):
        total += (4.0 if i % 2 else 2.0) * integrand(i * h)
    return max(0.0, min(1.0, total * h / 3.0))


def seeds_for_power(
    sd: float, margin: float, alpha: float = 0.05, power: float = 0.8, min_seeds: int = 3, max_seeds: int = 200
) -> int:
    """Smallest number of seeds (>= ``min_seeds``) for which ``tost_power`` >= ``power``."""
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")
    for n in range(max(2, min_seeds), max_seeds + 1):
        if tost_power(n, sd, margin, alpha) >= power:
            return n
    raise ValueError(f"{max_seeds} seeds do not reach power {power} at sd={sd}, margin={margin}: "
                     "widen the margin or reduce the seed variance")
