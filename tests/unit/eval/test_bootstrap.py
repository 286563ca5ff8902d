"""Paired significance tests through sacrebleu: p-values, confidence intervals, errors."""

from __future__ import annotations

import os
import random

import pytest

from nmt.eval.bootstrap import format_paired, paired_test
from nmt.eval.score import ScoreError, score

random.seed(0)
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
]
REFS = [" ".join(random.choice(WORDS) for _ in range(8)) for _ in range(60)]
GOOD = [r if i % 4 else " ".join(r.split()[:-1]) for i, r in enumerate(REFS)]
BAD = [" ".join(w if random.random() < 0.5 else "nu" for w in r.split()) for r in REFS]
NOISY = [" ".join(w if random.random() < 0.5 else "nu" for w in r.split()) for r in REFS]


def by_system(results, metric="BLEU"):
    return {r.system: r for r in results if r.metric == metric}


@pytest.mark.parametrize("test", ["bs", "ar"])
def test_clearly_better_system_is_significant(test):
    results, sigs = paired_test(
        BAD, {"good": GOOD, "noisy": NOISY}, REFS, ("bleu", "chrf"), test=test, n_samples=200
    )
    bleu = by_system(results)
    assert list(bleu) == ["baseline", "good", "noisy"]
    assert bleu["baseline"].p_value is None
    assert bleu["good"].score == pytest.approx(score(GOOD, REFS, ("bleu",))[0].score)
    assert bleu["good"].p_value < 0.01
    assert 0.0 <= bleu["noisy"].p_value <= 1.0 and bleu["noisy"].p_value > bleu["good"].p_value
    assert abs(bleu["good"].mean - bleu["good"].score) < 2 * bleu["good"].ci
    assert set(sigs) == {"BLEU", "chrF2"} and "seed:12345" in sigs["BLEU"]
    assert by_system(results, "chrF2")["good"].p_value < 0.01


def test_similar_system_is_not_significant_and_seed_is_reproducible():
    """A system drawn from the same noise process as the baseline is not significantly better.
    (An identical system gets the smallest p-value on purpose in sacrebleu/multeval: a zero
    difference is not attributed to chance.)"""
    a, _ = paired_test(BAD, {"noisy": NOISY}, REFS, n_samples=200, seed=3)
    b, _ = paired_test(BAD, {"noisy": NOISY}, REFS, n_samples=200, seed=3)
    assert by_system(a)["noisy"].p_value > 0.1
    assert [(r.p_value, r.mean, r.ci) for r in a] == [(r.p_value, r.mean, r.ci) for r in b]
    c, _ = paired_test(BAD, {"noisy": NOISY}, REFS, n_samples=200, seed=4)
    assert [r.mean for r in c] != [r.mean for r in a]
    assert os.environ.get("SACREBLEU_SEED") != "3"


def test_format_and_errors():
    results, sigs = paired_test(BAD, {"good": GOOD}, REFS, n_samples=50)
    text = format_paired(results, sigs)
    assert "good" in text and "BLEU signature: nrefs:1|bs:50" in text
    with pytest.raises(ScoreError, match="system 'short' has 59 lines"):
        paired_test(BAD, {"short": GOOD[:-1]}, REFS)
    with pytest.raises(ScoreError, match="at least one system"):
        paired_test(BAD, {}, REFS)
    with pytest.raises(ScoreError, match="unknown paired test"):
        paired_test(BAD, {"good": GOOD}, REFS, test="t")  # type: ignore[arg-type]


# --- cluster bootstrap over seeds -----------------------------------------------------------------

SEEDS_GOOD = [GOOD, [r if i % 3 else " ".join(r.split()[:-2]) for i, r in enumerate(REFS)]]
SEEDS_NOISY = [NOISY, BAD]


def _bleu(hyps, refs) -> float:
    from sacrebleu.metrics import BLEU

    return BLEU().corpus_score(list(hyps), [list(refs)]).score


def test_cluster_bootstrap_difference_is_the_seed_mean_difference():
    from nmt.eval.bootstrap import cluster_paired_bootstrap

    res = cluster_paired_bootstrap(SEEDS_GOOD, SEEDS_NOISY, REFS, n_samples=200)
    want = sum(_bleu(a, REFS) - _bleu(b, REFS) for a, b in zip(SEEDS_GOOD, SEEDS_NOISY)) / 2
    assert res.difference == pytest.approx(want, abs=1e-9)
    assert (res.seeds, res.sentences, res.n_samples) == (2, len(REFS), 200)
    assert res.p_value < 0.01 and 0 < res.ci_low < res.difference < res.ci_high


def test_cluster_bootstrap_resample_scores_the_drawn_sentences_of_every_seed():
    """One resample, recomputed by hand: the same drawn sentences for every seed and both sides."""
    import numpy as np

    from nmt.eval.bootstrap import cluster_paired_bootstrap

    res = cluster_paired_bootstrap(SEEDS_GOOD, SEEDS_NOISY, REFS, n_samples=1, seed=7)
    counts = np.random.default_rng(7).multinomial(len(REFS), np.full(len(REFS), 1 / len(REFS)), size=1)[0]
    idx = [i for i, c in enumerate(counts) for _ in range(c)]
    refs = [REFS[i] for i in idx]
    diff = sum(_bleu([a[i] for i in idx], refs) - _bleu([b[i] for i in idx], refs)
               for a, b in zip(SEEDS_GOOD, SEEDS_NOISY)) / 2
    assert res.ci_low == pytest.approx(diff, abs=1e-6) and res.ci_high == pytest.approx(diff, abs=1e-6)


def test_identical_seeds_carry_no_more_evidence_than_one():
    """Copies of one seed are one cluster: the interval does not shrink as it would if the copies'
    sentences were resampled as independent test sentences."""
    from nmt.eval.bootstrap import cluster_paired_bootstrap

    one = cluster_paired_bootstrap([GOOD], [NOISY], REFS, n_samples=300, seed=3)
    four = cluster_paired_bootstrap([GOOD] * 4, [NOISY] * 4, REFS, n_samples=300, seed=3)
    assert four.difference == pytest.approx(one.difference)
    assert (four.ci_low, four.ci_high) == pytest.approx((one.ci_low, one.ci_high))
    assert four.p_value == one.p_value


def test_cluster_bootstrap_of_a_setting_against_itself_and_errors():
    from nmt.eval.bootstrap import cluster_paired_bootstrap

    same = cluster_paired_bootstrap(SEEDS_GOOD, SEEDS_GOOD, REFS, metric="chrf", n_samples=50)
    assert same.difference == 0.0 and same.p_value == 1.0 and same.ci_low == same.ci_high == 0.0
    with pytest.raises(ScoreError, match="same seeds on both sides"):
        cluster_paired_bootstrap(SEEDS_GOOD, [GOOD], REFS)
    with pytest.raises(ScoreError, match="seed 1: 59 system"):
        cluster_paired_bootstrap([GOOD, GOOD[:-1]], SEEDS_GOOD, REFS)
