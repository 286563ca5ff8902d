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

Each part gives a *support* p-value and a *refute* p-value. The parts of one claim form an
**intersection-union test**: the claim is supported when every part is, each at level alpha, so its
support p is the largest of its parts' (no correction needed within a claim); it is refuted when any
part is, so its refute p is the smallest of its parts' times the number of parts (Bonferroni within
the claim). **Holm's** step-down correction is then applied across the claims of a family (one
corpus, direction and stage), to the claims' support p-values and separately to their refute
p-values. A claim is **reproduced** when its adjusted support p <= alpha, **not reproduced** when its
adjusted refute p <= alpha, otherwise **inconclusive** (the two cannot both hold: they need a part's
mean on opposite sides of a margin). A part with fewer than two paired seeds has p = 1. A part marked
``cheaper`` also claims that A costs less, and one with ``cost_reference`` / ``cost_ratio`` that A
costs at most that many times the reference setting: when the measured attention FLOPs break such a
relation the claim is not reproduced whatever the tests say (and it is never reproduced without
the FLOPs it needs). Each
part also shows its own test at alpha, unadjusted, for reading; the decision is the claim's. A
setting whose validation BLEU rose by more than margin / 2 over its last 1,000 updates (mean over its
seeds) is flagged beside the claim: its budget may have stopped it short of its plateau.

A family is decided only once: given the seeds planned for each study (``planned``), its claims
stay **pending**, with no statistics computed, until every planned seed of every compared setting
has finished, so that no verdict, mean or interval exists for a reader to stop on early.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Iterable, Literal, Optional, Protocol, Sequence

from nmt.ablate.tdist import t_cdf, t_ppf

Test = Literal["close", "worse", "not_worse", "better"]
TESTS: tuple[str, ...] = ("close", "worse", "not_worse", "better")
Verdict = Literal["reproduced", "not reproduced", "inconclusive", "pending"]


class Run(Protocol):
    """What a verdict needs from a run record (``nmt.ablate.results.RunRecord`` has it)."""

    label: str
    seed: int
    bleu: float
    chrf: float
    attention_flops: int
    val_curve: Optional[list[list[float]]]


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


def pooled_sd(stats: Sequence[PairedStats | None]) -> tuple[float, int]:
    """The pooled SD of several pairs' differences (each pair's variance weighted by its degrees of
    freedom; None entries skipped) and its degrees of freedom; ValueError when none has two seeds."""
    num, df = 0.0, 0
    for s in stats:
        if s is not None:
            num += (s.n - 1) * s.sd ** 2
            df += s.n - 1
    if df == 0:
        raise ValueError("no pair has two seeds: no spread to pool")
    return (num / df) ** 0.5, df


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
    cost_reference: Optional[str] = None  # and A's attention FLOPs at most cost_ratio x this setting's
    cost_ratio: Optional[float] = None

    def __post_init__(self) -> None:
        if self.test not in TESTS:
            raise ValueError(f"claim part {self.a} vs {self.b}: unknown test {self.test!r} (one of {', '.join(TESTS)})")
        if self.margin < 0:
            raise ValueError(f"claim part {self.a} vs {self.b}: margin must be >= 0, got {self.margin}")
        if (self.cost_reference is None) != (self.cost_ratio is None) or (self.cost_ratio or 1.0) <= 0:
            raise ValueError(f"claim part {self.a} vs {self.b}: cost_reference and a positive cost_ratio go together")

    @property
    def has_cost(self) -> bool:
        """Whether the part also states a cost relation (decided by measured FLOPs, not by a test)."""
        return self.cheaper or self.cost_reference is not None

    def describe(self) -> str:
        m = f"{self.margin:g}"
        neg = f"−{m}" if self.margin else "0"  # margin 0: "A − B < 0", not "< −0"
        sign = {"close": f"{neg} < A − B < {m}", "worse": f"A − B < {neg}",
                "not_worse": f"A − B > {neg}", "better": f"A − B > {m}"}[self.test]
        cost = ", A's attention FLOPs < B's" if self.cheaper else ""
        if self.cost_reference is not None:
            cost += f", A's attention FLOPs <= {self.cost_ratio:g} x {self.cost_reference}'s"
        return f"{self.a} vs {self.b} ({self.study}): {sign}{cost}"


@dataclass
class Claim:
    """A claim of the paper, tested by one or more parts."""

    id: str
    text: str
    parts: list[ClaimPart]


@dataclass
class PartResult:
    """A tested part: its statistics, p-values and its own test at alpha (unadjusted, for reading)."""

    claim: str
    part: ClaimPart
    stats: Optional[PairedStats]
    p_support: float
    p_refute: float
    cost_ok: Optional[bool] = None  # for a part with a cost relation: whether the measured FLOPs satisfy it
    verdict: str = "inconclusive"
    seeds_done: int = 0  # seeds finished for both settings
    seeds_planned: Optional[int] = None  # seeds planned for both (None: not given, or not decided yet)


@dataclass
class ClaimResult:
    """A claim's decision: intersection-union p-values, Holm-adjusted across the family's claims."""

    claim: str
    p_support: float  # the largest support p of its parts
    p_refute: float  # the smallest refute p of its parts x the number of parts
    p_support_holm: float = 1.0
    p_refute_holm: float = 1.0
    verdict: str = "inconclusive"
    rising: list[str] = field(default_factory=list)  # settings still rising at the end of their budget


RISE_WINDOW = 1000  # updates over which a still-rising curve is measured


def still_rising(runs: Sequence[Run], label: str, threshold: float, window: int = RISE_WINDOW) -> bool:
    """Whether ``label``'s validation BLEU rose by more than ``threshold`` over its last ``window``
    updates, on average over its seeds (runs without a curve that long are left out)."""
    rises = []
    for r in runs:
        curve = [(float(step), float(bleu)) for step, bleu in (r.val_curve or [])] if r.label == label else []
        if not curve:
            continue
        last_step, last = curve[-1]
        before = [bleu for step, bleu in curve if step <= last_step - window]
        if before:
            rises.append(last - before[-1])
    return bool(rises) and statistics.fmean(rises) > threshold


def _cost_ok(runs: Sequence[Run], part: ClaimPart) -> Optional[bool]:
    """For a part with a cost relation: whether A's attention FLOPs (on the test set, the same for
    every seed) are below B's (``cheaper``) and at most ``cost_ratio`` times ``cost_reference``'s;
    None when not asked or when a setting it needs has no finished run."""
    if not part.has_cost:
        return None

    def flops(label: str) -> list[int]:
        return [r.attention_flops for r in runs if r.label == label]

    a = flops(part.a)
    needed = [a] + ([flops(part.b)] if part.cheaper else []) + (
        [flops(part.cost_reference)] if part.cost_reference is not None else [])
    if not all(needed):
        return None
    ok = True
    if part.cheaper:
        ok = ok and max(a) < min(flops(part.b))
    if part.cost_reference is not None and part.cost_ratio is not None:
        ok = ok and max(a) <= part.cost_ratio * min(flops(part.cost_reference))
    return ok


def _verdict(p_support: float, p_refute: float, alpha: float) -> str:
    return "reproduced" if p_support <= alpha else "not reproduced" if p_refute <= alpha else "inconclusive"


def seeds_done(runs: Sequence[Run], part: ClaimPart, plan: Optional[Sequence[int]] = None) -> int:
    """How many seeds both settings of ``part`` have finished (of ``plan`` when given)."""
    done = {r.seed for r in runs if r.label == part.a} & {r.seed for r in runs if r.label == part.b}
    return len(done if plan is None else done & set(plan))


def claims_in(claims: Sequence[Claim], studies: Iterable[str]) -> list[Claim]:
    """The claims a family tests: those whose every part's study is one of ``studies`` (study kinds)."""
    kinds = set(studies)
    return [c for c in claims if all(p.study in kinds for p in c.parts)]


def decide_family(
    claims: Sequence[Claim], runs_of: dict[str, Sequence[Run]], alpha: float = 0.05,
    planned: Optional[dict[str, Sequence[int]]] = None,
) -> tuple[list[PartResult], dict[str, ClaimResult]]:
    """Every part's statistics and every claim's decision in one family. ``runs_of`` maps a part's
    ``study`` to its finished runs; a claim with a part whose study is absent is out of scope
    (skipped). With ``planned`` (study -> the seeds planned for it; a study left out has no seed
    count yet), the whole family is pending until every part has all its study's planned seeds for
    both settings (see module)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    in_scope = claims_in(claims, runs_of)
    if planned is not None:
        waiting = []
        for c in in_scope:
            for p in c.parts:
                plan = planned.get(p.study)
                waiting.append(PartResult(c.id, p, None, 1.0, 1.0, None, "pending", seeds_done(runs_of[p.study], p, plan),
                                          None if plan is None else len(plan)))
        if any(r.seeds_planned is None or r.seeds_done < r.seeds_planned for r in waiting):
            return waiting, {c.id: ClaimResult(c.id, 1.0, 1.0, 1.0, 1.0, "pending") for c in in_scope}
    results: list[PartResult] = []
    decided: dict[str, ClaimResult] = {}
    for claim in in_scope:
        mine = []
        for part in claim.parts:
            runs = runs_of[part.study]
            s = paired_stats(runs, part.a, part.b, part.metric)
            sup, ref = support_refute(s, part.test, part.margin) if s is not None else (1.0, 1.0)
            cost = _cost_ok(runs, part)
            verdict = "not reproduced" if cost is False else _verdict(sup, ref, alpha)
            mine.append(PartResult(claim.id, part, s, sup, ref, cost, verdict, 0 if s is None else s.n,
                                   None if planned is None else len(planned[part.study])))
        results += mine
        labels = dict.fromkeys((p.study, x) for p in claim.parts for x in (p.a, p.b))
        rising = [x for st, x in labels if still_rising(runs_of[st], x, min(p.margin for p in claim.parts) / 2)]
        decided[claim.id] = ClaimResult(claim.id, max(r.p_support for r in mine),
                                        min(1.0, len(mine) * min(r.p_refute for r in mine)), rising=rising)
    claim_results = list(decided.values())
    for c, ps, pr in zip(claim_results, holm([c.p_support for c in claim_results]),
                         holm([c.p_refute for c in claim_results])):
        c.p_support_holm, c.p_refute_holm, c.verdict = ps, pr, _verdict(ps, pr, alpha)
        costs = [r.cost_ok for r in results if r.claim == c.claim and r.part.has_cost]
        if False in costs:  # the cost half of the claim is a measurement, not a test: it fails outright
            c.verdict = "not reproduced"
        elif None in costs and c.verdict == "reproduced":
            c.verdict = "inconclusive"
    return results, decided
