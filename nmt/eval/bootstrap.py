"""Paired significance tests of systems against a baseline, with sacrebleu's own implementation
(``sacrebleu.significance.PairedTest``): paired bootstrap resampling (Koehn 2004, as Moses'
``bootstrap-hypothesis-difference-significance.pl``) or approximate randomization.

For each metric and system: the score, the p-value of the null hypothesis that the system and the
baseline are equally good (the observed difference is due to chance), and the bootstrap mean with
its 95% confidence half-width. The resampling is seeded (sacrebleu's default seed 12345), so
results are reproducible; the seed and sample count appear in the signature.

``cluster_paired_bootstrap`` compares two *settings* trained with several seeds: it resamples
source sentences and keeps all seeds' hypotheses of a sentence together, so that the seeds of one
setting are never treated as independent test sentences.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from sacrebleu.significance import PairedTest

from nmt.eval.score import ScoreError, make_metric, reference_streams


@dataclass
class PairedResult:
    """One system under one metric; ``p_value`` is None for the baseline itself."""

    system: str
    metric: str
    score: float
    p_value: float | None
    mean: float | None
    ci: float | None  # half-width of the 95% interval: mean +- ci


@contextlib.contextmanager
def _sacrebleu_seed(seed: int | None) -> Iterator[None]:
    """sacrebleu reads its resampling seed from $SACREBLEU_SEED; set it for the duration."""
    old = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = "None" if seed is None else str(seed)
    try:
        yield
    finally:
        if old is None:
            del os.environ["SACREBLEU_SEED"]
        else:
            os.environ["SACREBLEU_SEED"] = old


def paired_test(
    baseline: Sequence[str],
    systems: dict[str, Sequence[str]],
    refs: Sequence[str] | Sequence[Sequence[str]],
    metrics: Sequence[str] = ("bleu",),
    *,
    test: Literal["bs", "ar"] = "bs",
    n_samples: int = 1000,
    seed: int | None = 12345,
    baseline_name: str = "baseline",
    tokenize: str | None = None,
    lowercase: bool = False,
) -> tuple[list[PairedResult], dict[str, str]]:
    """Compare each system in ``systems`` (name -> hypotheses) with ``baseline`` -> the results
    (baseline first, then systems in order, per metric) and each metric's signature."""
    if test not in ("bs", "ar"):
        raise ScoreError(f"unknown paired test {test!r}; choose 'bs' (bootstrap) or 'ar' (randomization)")
    if not systems:
        raise ScoreError("paired test needs at least one system besides the baseline")
    if baseline_name in systems:
        raise ScoreError(f"system name {baseline_name!r} is used by the baseline")
    streams = reference_streams(baseline, refs)
    for name, hyps in systems.items():
        if len(hyps) != len(baseline):
            raise ScoreError(f"system {name!r} has {len(hyps)} lines, the baseline {len(baseline)}")
    named = [(baseline_name, list(baseline))] + [(n, list(h)) for n, h in systems.items()]
    metric_objs = {m: make_metric(m, tokenize=tokenize, lowercase=lowercase) for m in metrics}
    with _sacrebleu_seed(seed):
        tester = PairedTest(
            named,
            metric_objs,
            streams,
            test_type=test,
            n_samples=n_samples,
            n_ar_confidence=-1 if test == "bs" else 0,
        )
        signatures, table = tester()
    results = []
    for metric_name, column in table.items():
        if metric_name == "System":
            continue
        for system, res in zip(table["System"], column):
            results.append(PairedResult(system, metric_name, float(res.score), res.p_value, res.mean, res.ci))
    return results, {k: str(v) for k, v in signatures.items()}


def format_paired(results: Sequence[PairedResult], signatures: dict[str, str]) -> str:
    """A plain table: system, metric, score, mean +- ci, p-value; then the signatures."""
    lines = [f"{'system':<20} {'metric':<8} {'score':>7} {'mean +- 95% ci':>18} {'p-value':>8}"]
    for r in results:
        spread = f"{r.mean:.2f} +- {r.ci:.2f}" if r.mean is not None and r.ci is not None else "-"
        p = f"{r.p_value:.4f}" if r.p_value is not None else "-"
        lines.append(f"{r.system:<20} {r.metric:<8} {r.score:>7.2f} {spread:>18} {p:>8}")
    lines += [f"{name} signature: {sig}" for name, sig in signatures.items()]
    return "\n".join(lines)


@dataclass
class ClusterResult:
    """Paired cluster bootstrap of A - B: the observed difference of the seed-mean scores, its
    95 % percentile interval over the resamples and the two-sided p-value of "no difference"."""

    metric: str
    seeds: int
    sentences: int
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_samples: int
    seed: int


def _sentence_stats(metric, hypotheses: Sequence[Sequence[str]], streams: list[list[str]]):
    """(K, N, S) array of sacrebleu's per-sentence sufficient statistics of each seed's hypotheses."""
    import numpy as np

    return np.stack([np.asarray(metric._extract_corpus_statistics(list(h), streams), dtype=np.float64)
                     for h in hypotheses])


def cluster_paired_bootstrap(
    system: Sequence[Sequence[str]],
    baseline: Sequence[Sequence[str]],
    refs: Sequence[str],
    metric: str = "bleu",
    *,
    n_samples: int = 1000,
    seed: int = 12345,
) -> ClusterResult:
    """Bootstrap of the seed-mean corpus score of ``system`` minus ``baseline`` that resamples
    *source sentences*: ``system[k]`` and ``baseline[k]`` are the hypotheses of training seed k
    (same order of seeds on both sides), and one resample draws N sentence indices with
    replacement and keeps every seed's hypotheses of each drawn sentence together (a cluster).
    Each resample scores every seed's corpus from sacrebleu's sufficient statistics of the drawn
    sentences, averages over seeds, and takes the difference. The p-value counts resampled
    differences, centred on their mean, at least as far from 0 as the observed one (+1 smoothing,
    as sacrebleu's paired test)."""
    import numpy as np

    if not system or len(system) != len(baseline):
        raise ScoreError(f"cluster bootstrap needs the same seeds on both sides: {len(system)} vs {len(baseline)}")
    if n_samples < 1:
        raise ScoreError(f"n_samples must be positive, got {n_samples}")
    streams = reference_streams(system[0], refs)
    for k, (a, b) in enumerate(zip(system, baseline)):
        if len(a) != len(streams[0]) or len(b) != len(streams[0]):
            raise ScoreError(f"seed {k}: {len(a)} system and {len(b)} baseline lines for {len(streams[0])} references")
    m = make_metric(metric)
    sys_stats, base_stats = _sentence_stats(m, system, streams), _sentence_stats(m, baseline, streams)  # (K, N, S)
    n = sys_stats.shape[1]

    def seed_mean(stats, weights) -> np.ndarray:  # weights (R, N) -> (R,) mean over seeds of the corpus score
        sums = np.einsum("rn,kns->rks", weights, stats)  # (R, K, S)
        return np.array([[m._compute_score_from_stats(list(s)).score for s in row] for row in sums]).mean(1)

    observed = float(seed_mean(sys_stats, np.ones((1, n)))[0] - seed_mean(base_stats, np.ones((1, n)))[0])
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_samples).astype(np.float64)  # (R, N) draw counts
    diffs = seed_mean(sys_stats, weights) - seed_mean(base_stats, weights)
    centred = np.abs(diffs - diffs.mean())
    p = (int(np.sum(centred >= abs(observed))) + 1) / (n_samples + 1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return ClusterResult(metric, len(system), n, observed, float(low), float(high), p, n_samples, seed)
