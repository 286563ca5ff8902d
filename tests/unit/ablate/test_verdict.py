"""Seed-level statistics and mechanical verdicts on synthetic run records (nmt.ablate.verdict, tdist, power)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Optional

import pytest

from nmt.ablate.power import seeds_for_power, tost_power
from nmt.ablate.tdist import betainc, norm_cdf, norm_ppf, t_cdf, t_ppf
from nmt.ablate.verdict import (
    Claim,
    ClaimPart,
    decide_family,
    holm,
    p_greater,
    p_less,
    paired_stats,
    still_rising,
    support_refute,
)


@dataclass
class Run:
    label: str
    seed: int
    bleu: float
    chrf: float = 0.0
    attention_flops: int = 100
    val_curve: Optional[list[list[float]]] = None


def decide(claims, runs_of, alpha=0.05):
    """``decide_family`` with the claims' verdicts as plain strings."""
    parts, claims_out = decide_family(claims, runs_of, alpha)
    return parts, {k: c.verdict for k, c in claims_out.items()}


def runs(label: str, scores: list[float]) -> list[Run]:
    return [Run(label, k + 1, s) for k, s in enumerate(scores)]


# --- the t distribution -------------------------------------------------------------------------

@pytest.mark.parametrize("p, df, t", [(0.975, 1, 12.706204736), (0.975, 2, 4.302652730), (0.975, 4, 2.776445105),
                                      (0.95, 10, 1.812461123), (0.95, 3, 2.353363435), (0.99, 30, 2.457261542)])
def test_t_quantiles_match_the_tables(p: float, df: int, t: float) -> None:
    assert t_ppf(p, df) == pytest.approx(t, abs=1e-7)
    assert t_cdf(t, df) == pytest.approx(p, abs=1e-9)
    assert t_cdf(-t, df) == pytest.approx(1 - p, abs=1e-9)  # symmetry


def test_t_tends_to_normal_and_beta_has_closed_forms() -> None:
    assert t_cdf(1.959963985, 1e7) == pytest.approx(0.975, abs=1e-6)
    assert norm_ppf(0.975) == pytest.approx(1.959963985, abs=1e-8) and norm_cdf(0.0) == 0.5
    for x in (0.1, 0.5, 0.93):  # I_x(1, b) = 1 - (1 - x)^b and I_x(a, 1) = x^a
        assert betainc(1.0, 3.5, x) == pytest.approx(1 - (1 - x) ** 3.5, rel=1e-12)
        assert betainc(2.5, 1.0, x) == pytest.approx(x ** 2.5, rel=1e-12)
    assert t_cdf(0.0, 3) == 0.5 and t_cdf(math.inf, 2) == 1.0


# --- paired statistics and one-sided tests ------------------------------------------------------

def test_paired_stats_pair_by_seed_and_give_the_t_interval() -> None:
    records = runs("A", [20.0, 21.0, 22.0, 30.0]) + runs("B", [19.0, 19.5, 21.0])  # seed 4 has no pair
    s = paired_stats(records, "A", "B")
    assert s is not None and s.seeds == [1, 2, 3] and s.diffs == [1.0, 1.5, 1.0]
    assert s.mean == pytest.approx(7 / 6) and s.sd == pytest.approx(math.sqrt(1 / 12))
    half = 4.302652730 * s.sd / math.sqrt(3)
    assert (s.ci_low, s.ci_high) == pytest.approx((s.mean - half, s.mean + half))
    assert paired_stats(runs("A", [1.0]) + runs("B", [2.0]), "A", "B") is None  # one seed: no test


def test_one_sided_p_values_are_complementary_and_monotone() -> None:
    s = paired_stats(runs("A", [1.0, 1.4, 0.8, 1.2]) + runs("B", [0.0] * 4), "A", "B")
    assert s is not None
    assert p_greater(s, 0.5) + p_less(s, 0.5) == pytest.approx(1.0)
    assert p_greater(s, 0.0) < p_greater(s, 0.5) < p_greater(s, 1.0) < p_greater(s, 2.0)
    t = (s.mean - 0.0) / s.se
    assert p_greater(s, 0.0) == pytest.approx(1 - t_cdf(t, 3))


def test_holm_adjusts_step_down_in_input_order() -> None:
    # sorted 0.01, 0.02, 0.03, 0.04 -> 4*0.01, max(.04, 3*.02), max(.06, 2*.03), max(.06, .04)
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([0.001]) == [0.001] and holm([]) == []
    ps = [random.Random(3).random() for _ in range(7)]
    adj = holm(ps)
    assert all(a >= p for a, p in zip(adj, ps))  # never below the raw p


# --- mechanical verdicts -----------------------------------------------------------------------

CLOSE = Claim("3", "0110 is close to 1111", [ClaimPart("self", "0110", "1111", "close", 1.0)])
VITAL = Claim("2", "E1 is vital in cross-attention", [ClaimPart("cross", "0111", "1111", "worse", 1.0)])


def noisy(label: str, mean: float, sd: float, n: int, seed: int) -> list[Run]:
    rng = random.Random(seed)
    return runs(label, [mean + rng.gauss(0, sd) for _ in range(n)])


def test_known_equivalent_pair_reproduces_a_close_claim() -> None:
    base = noisy("1111", 30.0, 0.6, 6, 1)  # same seed effect on both: paired differences are small
    close = [Run("0110", r.seed, r.bleu + d) for r, d in zip(base, [0.1, -0.2, 0.05, 0.15, -0.1, 0.0])]
    parts, verdicts = decide([CLOSE], {"self": base + close})
    assert verdicts == {"3": "reproduced"} and parts[0].p_support <= 0.05
    assert parts[0].stats is not None and parts[0].stats.ci_low > -1.0 and parts[0].stats.ci_high < 1.0


def test_known_different_pair_refutes_a_close_claim_and_supports_a_vital_one() -> None:
    base = noisy("1111", 30.0, 0.6, 5, 2)
    worse = [Run("0110", r.seed, r.bleu - 3.0 + d) for r, d in zip(base, [0.2, -0.3, 0.1, 0.0, -0.1])]
    _, verdicts = decide([CLOSE], {"self": base + worse})
    assert verdicts == {"3": "not reproduced"}
    cross = base + [Run("0111", r.seed, r.bleu - 3.0 + d) for r, d in zip(base, [0.2, -0.3, 0.1, 0.0, -0.1])]
    _, verdicts = decide([VITAL], {"cross": cross})
    assert verdicts == {"2": "reproduced"}
    equal = base + [Run("0111", r.seed, r.bleu + d) for r, d in zip(base, [0.1, -0.1, 0.05, 0.0, -0.05])]
    assert decide([VITAL], {"cross": equal})[1] == {"2": "not reproduced"}  # costs less than the margin


def test_few_noisy_seeds_are_inconclusive() -> None:
    records = runs("1111", [30.0, 30.0, 30.0]) + runs("0110", [29.0, 31.2, 29.5])  # mean -0.1, sd 1.1
    parts, verdicts = decide([CLOSE], {"self": records})
    assert verdicts == {"3": "inconclusive"}
    assert parts[0].p_support > 0.05 and parts[0].p_refute > 0.05
    one_seed = runs("1111", [30.0]) + runs("0110", [30.0])
    parts, verdicts = decide([CLOSE], {"self": one_seed})
    assert verdicts == {"3": "inconclusive"} and parts[0].stats is None and parts[0].p_support == 1.0


def test_holm_across_the_family_can_turn_a_verdict() -> None:
    # alone, the close pair is borderline-reproduced; with four more planned claims, Holm withholds it
    base = runs("1111", [30.0, 30.0, 30.0, 30.0])
    close = runs("0110", [30.5, 29.6, 30.4, 29.7])
    s = paired_stats(base + close, "0110", "1111")
    assert s is not None
    p_alone = support_refute(s, "close", 1.0)[0]
    assert 0.01 < p_alone <= 0.05
    _, alone = decide([CLOSE], {"self": base + close})
    assert alone == {"3": "reproduced"}
    others = [Claim(f"x{i}", "unrun", [ClaimPart("self", f"s{i}", "1111", "close", 1.0)]) for i in range(4)]
    parts, verdicts = decide([CLOSE, *others], {"self": base + close})
    assert verdicts["3"] == "inconclusive"  # the unrun claims count with p = 1 in the family
    _, claims = decide_family([CLOSE, *others], {"self": base + close})
    assert claims["3"].p_support_holm == pytest.approx(min(1.0, 5 * p_alone))
    assert parts[0].verdict == "reproduced"  # the part's own test, unadjusted, for reading


def test_a_claim_needs_every_part_and_out_of_scope_claims_are_skipped() -> None:
    base = noisy("1111", 30.0, 0.5, 5, 4)
    good = [Run("0110", r.seed, r.bleu + d) for r, d in zip(base, [0.05, -0.05, 0.0, 0.1, -0.1])]
    bad = [Run("0011", r.seed, r.bleu - 4 + d) for r, d in zip(base, [0.05, -0.05, 0.0, 0.1, -0.1])]
    both = Claim("1", "two parts", [ClaimPart("self", "0110", "1111", "close", 1.0),
                                     ClaimPart("self", "0011", "1111", "close", 1.0)])
    parts, verdicts = decide([both, VITAL], {"self": base + good + bad})
    assert [p.verdict for p in parts] == ["reproduced", "not reproduced"]
    assert verdicts == {"1": "not reproduced"}  # VITAL's study is absent: out of scope


def test_a_cheaper_claim_also_needs_lower_attention_flops() -> None:
    base = noisy("1111", 30.0, 0.5, 5, 5)
    close = [Run("0010+d", r.seed, r.bleu + d, attention_flops=60) for r, d in zip(base, [0.1, -0.1, 0.0, 0.05, -0.05])]
    part = ClaimPart("deform", "0010+d", "1111", "not_worse", 1.0, cheaper=True)
    claim = Claim("5", "0010+d matches 1111 at a lower cost", [part])
    parts, verdicts = decide([claim], {"deform": base + close})
    assert verdicts == {"5": "reproduced"} and parts[0].cost_ok is True
    dearer = [Run(r.label, r.seed, r.bleu, attention_flops=150) for r in close]
    parts, verdicts = decide([claim], {"deform": base + dearer})
    assert verdicts == {"5": "not reproduced"} and parts[0].cost_ok is False and parts[0].p_support <= 0.05
    assert "A's attention FLOPs < B's" in part.describe()


def test_parts_of_a_claim_are_an_intersection_union_test() -> None:
    """Support of a claim: every part at alpha, no correction within it (its p is the largest of its
    parts'); refutation: any part, Bonferroni within the claim; Holm only across claims."""
    base = noisy("1111", 30.0, 0.5, 6, 7)
    a = [Run("0111", r.seed, r.bleu + d) for r, d in zip(base, [0.3, -0.2, 0.1, 0.2, -0.1, 0.0])]
    b = [Run("0011", r.seed, r.bleu + d) for r, d in zip(base, [0.1, -0.3, 0.2, 0.0, 0.2, -0.2])]
    two = Claim("1", "two close parts", [ClaimPart("self", "0111", "1111", "close", 1.0),
                                         ClaimPart("self", "0011", "1111", "close", 1.0)])
    parts, claims = decide_family([two], {"self": base + a + b})
    assert claims["1"].p_support == max(p.p_support for p in parts)
    assert claims["1"].p_refute == pytest.approx(min(1.0, 2 * min(p.p_refute for p in parts)))
    assert claims["1"].p_support_holm == claims["1"].p_support  # one claim in the family: no Holm factor
    assert claims["1"].verdict == "reproduced"
    # a part at p just under alpha carries the claim when the other part is stronger: no factor 2
    borderline = runs("0110", [30.5, 29.6, 30.4, 29.7])
    base4 = runs("1111", [30.0] * 4)
    strong = runs("0111", [30.05, 29.95, 30.0, 30.02])
    pair = Claim("1", "borderline and strong", [ClaimPart("self", "0110", "1111", "close", 1.0),
                                                ClaimPart("self", "0111", "1111", "close", 1.0)])
    _, claims = decide_family([pair], {"self": base4 + borderline + strong})
    assert 0.01 < claims["1"].p_support <= 0.05 and claims["1"].verdict == "reproduced"


def test_a_setting_still_rising_is_flagged() -> None:
    flat = [[250.0 * k, 30.0 + min(k, 8) * 0.5] for k in range(1, 17)]  # plateau from 2,000 updates
    rising = [[250.0 * k, 20.0 + k * 0.5] for k in range(1, 17)]  # +2.0 over the last 1,000 updates
    assert not still_rising([Run("1111", 1, 30.0, val_curve=flat)], "1111", 0.5)
    assert still_rising([Run("0110", 1, 30.0, val_curve=rising)], "0110", 0.5)
    assert not still_rising([Run("0110", 1, 30.0)], "0110", 0.5)  # no curve: no flag
    base = [Run("1111", k, 30.0 + 0.1 * k, val_curve=flat) for k in range(1, 5)]
    late = [Run("0110", k, 30.0 + 0.1 * k + 0.05 * (-1) ** k, val_curve=rising) for k in range(1, 5)]
    _, claims = decide_family([CLOSE], {"self": base + late})
    assert claims["3"].rising == ["0110"]


def test_bad_claim_parts_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown test 'similar'"):
        ClaimPart("self", "a", "b", "similar", 1.0)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        ClaimPart("self", "a", "b", "close", -1.0)


# --- power analysis -----------------------------------------------------------------------------

def simulated_power(n: int, sd: float, margin: float, reps: int, seed: int) -> float:
    """Monte Carlo TOST power at true difference 0 (independent of the integral in nmt.ablate.power)."""
    rng = random.Random(seed)
    t = t_ppf(0.95, n - 1)
    hits = 0
    for _ in range(reps):
        d = [rng.gauss(0.0, sd) for _ in range(n)]
        m = sum(d) / n
        s = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1))
        hits += abs(m) + t * s / math.sqrt(n) < margin
    return hits / reps


@pytest.mark.parametrize("n, sd", [(3, 0.48), (4, 0.7), (6, 1.0)])
def test_tost_power_matches_simulation(n: int, sd: float) -> None:
    assert tost_power(n, sd, 1.0) == pytest.approx(simulated_power(n, sd, 1.0, 20000, n), abs=0.012)


def test_tost_power_approaches_the_normal_formula_for_many_seeds() -> None:
    n, sd, m = 400, 4.0, 1.0
    z = 1.6448536269514722
    assert tost_power(n, sd, m) == pytest.approx(2 * norm_cdf(m * math.sqrt(n) / sd - z) - 1, abs=0.01)


def test_seeds_for_power_is_the_smallest_sufficient_count() -> None:
    n = seeds_for_power(0.7, 1.0)
    assert tost_power(n, 0.7, 1.0) >= 0.8 and tost_power(n - 1, 0.7, 1.0) < 0.8 and n > 3
    assert seeds_for_power(0.05, 1.0) == 3  # never fewer than 3
    assert seeds_for_power(0.7, 1.0) <= seeds_for_power(0.9, 1.0) <= seeds_for_power(0.9, 0.8)
    with pytest.raises(ValueError, match="do not reach power"):
        seeds_for_power(10.0, 0.1, max_seeds=10)


# --- the pilot's decisions ----------------------------------------------------------------------

def test_plateau_step_is_where_the_curve_stays_near_its_best() -> None:
    from nmt.ablate.pilot import plateau_step

    curve = [[250, 15.0], [500, 28.0], [750, 33.0], [1000, 35.8], [1250, 36.3], [1500, 35.6], [1750, 36.0]]
    assert plateau_step(curve) == 1000  # 750 is 3.3 below the best, 1000 within 0.5
    assert plateau_step(curve, tolerance=0.2) == 1250
    assert plateau_step(list(reversed(curve))) == 1000  # any order
    assert plateau_step([[5, 1.0]]) == 5
    with pytest.raises(ValueError, match="empty"):
        plateau_step([])


def test_pilot_report_gives_the_curve_spread_and_seed_count() -> None:
    from nmt.ablate.pilot import pilot_report
    from nmt.ablate.results import RunRecord

    def rec(label: str, seed: int, bleu: float, curve: list[list[float]] | None) -> RunRecord:
        return RunRecord(label=label, seed=seed, spec=label, decoder_spec=None, vary="self", absolute_positions="no",
                         bleu=bleu, chrf=50.0, bleu_signature="b", chrf_signature="c", test_sentences=1, flops={"total": 1},
                         attention_flops=1, params=1, train_steps=1000, train_tokens_per_s=None,
                         decode_sentences_per_s=1.0, hypotheses="test.hyp", checkpoint="x", val_curve=curve)

    records = [rec("1111", k, b, [[250, 20.0], [500, 30.0 + k / 10], [750, 30.2]]) for k, b in ((1, 36.0), (2, 36.5), (3, 35.8))]
    records += [rec("0110", k, b, None) for k, b in ((1, 36.3), (2, 36.1), (3, 36.2))]
    text = pilot_report(records, "0110", "1111", 1.0)
    s = paired_stats(records, "0110", "1111")
    assert s is not None
    assert "| 500 | 30.10 | 30.20 | 30.30 |" in text and "a fixed budget would be 500 updates" in text
    assert f"SD {s.sd:.2f}" in text and f"**{seeds_for_power(s.sd, 1.0)}**" in text
    assert "no spread yet" in pilot_report(records[:3], "0110", "1111", 1.0)


def test_a_cost_bound_by_a_reference_setting() -> None:
    """Claim 5's form: A close to B, cheaper than B, and at most 1.25 x the reference's cost."""
    base = noisy("1111+d", 30.0, 0.5, 5, 8)
    close = [Run("0010+d", r.seed, r.bleu + d, attention_flops=120) for r, d in zip(base, [0.1, -0.1, 0.0, 0.05, -0.05])]
    deform = [Run("d", r.seed, r.bleu - 0.5, attention_flops=100) for r in base]
    base = [Run(r.label, r.seed, r.bleu, attention_flops=300) for r in base]
    part = ClaimPart("deform", "0010+d", "1111+d", "close", 1.0, cheaper=True, cost_reference="d", cost_ratio=1.25)
    claim = Claim("5", "0010+d as accurate as 1111+d, cost slightly above d", [part])
    parts, verdicts = decide([claim], {"deform": base + close + deform})
    assert verdicts == {"5": "reproduced"} and parts[0].cost_ok is True
    dear = [Run(r.label, r.seed, r.bleu, attention_flops=130) for r in close]  # 1.3 x d
    parts, verdicts = decide([claim], {"deform": base + dear + deform})
    assert verdicts == {"5": "not reproduced"} and parts[0].cost_ok is False
    _, verdicts = decide([claim], {"deform": base + close})  # the reference has not run: no verdict yet
    assert verdicts == {"5": "inconclusive"}
    assert "<= 1.25 x d's" in part.describe()
    with pytest.raises(ValueError, match="go together"):
        ClaimPart("deform", "a", "b", "close", 1.0, cost_reference="d")


@pytest.mark.parametrize("n,sd,beyond", [(4, 0.5, 1.0), (6, 0.8, 0.5)])
def test_one_sided_power_matches_simulation(n: int, sd: float, beyond: float) -> None:
    from nmt.ablate.power import one_sided_power

    rng = random.Random(11)
    t = t_ppf(0.95, n - 1)
    hits = 0
    for _ in range(20000):  # worse at margin 1: true difference -1 - beyond, declared when mean + t se < -1
        d = [-1.0 - beyond + rng.gauss(0, sd) for _ in range(n)]
        mean = sum(d) / n
        se = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1) / n)
        hits += mean + t * se < -1.0
    assert one_sided_power(n, sd, beyond) == pytest.approx(hits / 20000, abs=0.015)


def test_a_part_describes_its_test_with_its_margin() -> None:
    assert ClaimPart("s", "a", "b", "close", 1.0).describe() == "a vs b (s): −1 < A − B < 1"
    assert ClaimPart("s", "a", "b", "worse", 0.5).describe() == "a vs b (s): A − B < −0.5"
    assert ClaimPart("s", "a", "b", "worse", 0.0).describe() == "a vs b (s): A − B < 0"
    assert ClaimPart("s", "a", "b", "not_worse", 0.0).describe() == "a vs b (s): A − B > 0"
    assert ClaimPart("s", "a", "b", "better", 0.0).describe() == "a vs b (s): A − B > 0"
