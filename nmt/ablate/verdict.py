"""Seed-level statistics of a claim about two settings, and its mechanical verdict.

The unit of evidence is a training run. For settings A and B and the seeds both finished, the
paired differences ``d_k = score(A, seed k) - score(B, seed k)`` (the same seed gives both the same
batch order) are treated as a sample from the distribution of training outcomes; the tests are
one-sample t tests on them (``n - 1`` degrees of freedom), the interval is the t-based 95 % CI of
their mean.

A claim part names a pair, a test and a margin ``m`` (BLEU, fixed before the runs). With
``delta`` the true mean difference A - B:

================  ==========================  ===============================
test              supported when (H1)         refuted when (H1)
================  ==========================  ===============================
``close``         -m < delta < m (TOST)       |delta| > m (both sides, x2)
``worse``         delta < -m                  delta > -m
``not_worse``     delta > -m                  delta < -m
``better``        delta > m                   delta < m
================  ==========================  ===============================

Each part gives a *support* p-value and a *refute* p-value. Holm's step-down correction is applied
to the support p-values of a family (all parts of all claims tested on one corpus and direction),
and separately to its refute p-values. A part is **reproduced** when its adjusted support p <=
alpha, **not reproduced** when its adjusted refute p <= alpha, otherwise **inconclusive** (the two
cannot both hold: they need the mean on opposite sides of a margin). A part with fewer than two
paired seeds enters its family with p = 1. A part marked ``cheaper`` also claims that A costs less:
when A's attention FLOPs are not below B's it is not reproduced whatever the test says (and it is
never reproduced without the FLOPs of both). A claim is reproduced when all its parts are, not
reproduced when one part is, inconclusive otherwise.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Literal, Optional, Protocol, Sequence

from nmt.ablate.tdist import t_cdf, t_ppf

Test = Literal["close", "worse", "not_worse", "better"]
TESTS: tuple[str, ...] = ("close", "worse", "not_worse", "better")
Verdict = Literal["reproduced", "not reproduced", "inconclusive"]


class Run(Protocol):
    """What a verdict needs from a run record (``nmt.ablate.results.RunRecord`` has it)."""

    label: str
    seed: int
    bleu: float
    chrf: float
    attention_flops: int


@dataclass
class PairedStats:
    """Paired differences A - B over the common seeds: their mean, sample SD and 95 % t interval,
    and the mean score of A and of B over those seeds."""

    seeds: list[int]
    diffs: list[float]
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    mean_a: float
    mean_b: float

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def se(self) -> float:
        return self.sd / math.sqrt(self.n)


def paired_stats(runs: Sequence[Run], a: str, b: str, metric: str = "bleu") -> PairedStats | None:
    """Statistics of ``metric`` of setting ``a`` minus setting ``b`` over the seeds both have
    (None with fewer than two such seeds: no spread, no test)."""
    by_a = {r.seed: float(getattr(r, metric)) for r in runs if r.label == a}
    by_b = {r.seed: float(getattr(r, metric)) for r in runs if r.label == b}
    seeds = sorted(set(by_a) & set(by_b))
    if len(seeds) < 2:
        return None
    diffs = [by_a[k] - by_b[k] for k in seeds]
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    half = t_ppf(0.975, len(diffs) - 1) * sd / math.sqrt(len(diffs))
    return PairedStats(seeds, diffs, mean, sd, mean - half, mean + half,
                       statistics.fmean(by_a[k] for k in seeds), statistics.fmean(by_b[k] for k in seeds))


def p_greater(s: PairedStats, threshold: float) -> float:
    """One-sided p-value of H0: delta <= threshold against H1: delta > threshold."""
    if s.sd == 0.0:  # all differences equal: certain on either side, undecidable on the threshold
        return 0.0 if s.mean > threshold else 1.0
    return 1.0 - t_cdf((s.mean - threshold) / s.se, s.n - 1)


def p_less(s: PairedStats, threshold: float) -> float:
    """One-sided p-value of H0: delta >= threshold against H1: delta < threshold."""
    if s.sd == 0.0:
        return 0.0 if s.mean < threshold else 1.0
    return t_cdf((s.mean - threshold) / s.se, s.n - 1)


def support_refute(s: PairedStats, test: str, margin: float) -> tuple[float, float]:
    """(support p, refute p) of ``test`` at ``margin`` (see the module table)."""
    if test == "close":  # TOST: both one-sided tests must reject, so the larger p counts
        return max(p_greater(s, -margin), p_less(s, margin)), min(1.0, 2.0 * min(p_greater(s, margin), p_less(s, -margin)))
    if test == "worse":
        return p_less(s, -margin), p_greater(s, -margin)
    if test == "not_worse":
        return p_greater(s, -margin), p_less(s, -margin)
    if test == "better":
        return p_greater(s, margin), p_less(s, margin)
    raise ValueError(f"unknown test {test!r}; expected one of {', '.join(TESTS)}")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (reject H_i when adjusted p_i <= alpha)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass
class ClaimPart:
    """One tested pair of a claim: A against B in a study, with a test and a margin."""

    study: str
    a: str
    b: str
    test: str
    margin: float
    metric: str = "bleu"
    cheaper: bool = False  # the claim also says A costs less: A's attention FLOPs must be below B's

    def __post_init__(self) -> None:
        if self.test not in TESTS:
            raise ValueError(f"claim part {self.a} vs {self.b}: unknown test {self.test!r} (one of {', '.join(TESTS)})")
        if self.margin < 0:
            raise ValueError(f"claim part {self.a} vs {self.b}: margin must be >= 0, got {self.margin}")

    def describe(self) -> str:
        sign = {"close": f"−{self.margin:g} < A − B < {self.margin:g}", "worse": f"A − B < −{self.margin:g}",
                "not_worse": f"A − B > −{self.margin:g}", "better": f"A − B > {self.margin:g}"}[self.test]
        return f"{self.a} vs {self.b} ({self.study}): {sign}" + (", A's attention FLOPs < B's" if self.cheaper else "")


@dataclass
class Claim:
    """A claim of the paper, tested by one or more parts."""

    id: str
    text: str
    parts: list[ClaimPart]


@dataclass
class PartResult:
    """A tested part: its statistics, raw and Holm-adjusted p-values, and verdict."""

    claim: str
    part: ClaimPart
    stats: Optional[PairedStats]
    p_support: float
    p_refute: float
    p_support_holm: float = 1.0
    p_refute_holm: float = 1.0
    cost_ok: Optional[bool] = None  # for a ``cheaper`` part: whether A's attention FLOPs are below B's
    verdict: str = "inconclusive"


def _cheaper(runs: Sequence[Run], part: ClaimPart) -> Optional[bool]:
    """For a ``cheaper`` part: whether A's attention FLOPs (on the test set, the same for every
    seed) are below B's; None when not asked or when a setting has no finished run."""
    if not part.cheaper:
        return None
    flops_a = [r.attention_flops for r in runs if r.label == part.a]
    flops_b = [r.attention_flops for r in runs if r.label == part.b]
    if not flops_a or not flops_b:
        return None
    return max(flops_a) < min(flops_b)


def decide_family(
    claims: Sequence[Claim], runs_of: dict[str, Sequence[Run]], alpha: float = 0.05
) -> tuple[list[PartResult], dict[str, str]]:
    """Verdicts of every part and every claim of one family. ``runs_of`` maps a part's ``study``
    to its finished runs; a claim with a part whose study is absent is out of scope (skipped)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    results: list[PartResult] = []
    for claim in claims:
        if any(p.study not in runs_of for p in claim.parts):
            continue
        for part in claim.parts:
            s = paired_stats(runs_of[part.study], part.a, part.b, part.metric)
            sup, ref = support_refute(s, part.test, part.margin) if s is not None else (1.0, 1.0)
            results.append(PartResult(claim.id, part, s, sup, ref, cost_ok=_cheaper(runs_of[part.study], part)))
    for r, ps, pr in zip(results, holm([r.p_support for r in results]), holm([r.p_refute for r in results])):
        r.p_support_holm, r.p_refute_holm = ps, pr
        r.verdict = "reproduced" if ps <= alpha else "not reproduced" if pr <= alpha else "inconclusive"
        if r.cost_ok is False:  # the cost half of the claim is a measurement, not a test: it fails outright
            r.verdict = "not reproduced"
        elif r.cost_ok is None and r.part.cheaper and r.verdict == "reproduced":
            r.verdict = "inconclusive"
    verdicts: dict[str, str] = {}
    for claim in claims:
        mine = [r.verdict for r in results if r.claim == claim.id]
        if not mine:
            continue
        verdicts[claim.id] = ("not reproduced" if "not reproduced" in mine
                              else "reproduced" if all(v == "reproduced" for v in mine) else "inconclusive")
    return results, verdicts
