"""Paired significance tests of systems against a baseline, with sacrebleu's own implementation
(``sacrebleu.significance.PairedTest``): paired bootstrap resampling (Koehn 2004, as Moses'
``bootstrap-hypothesis-difference-significance.pl``) or approximate randomization.

For each metric and system: the score, the p-value of the null hypothesis that the system and the
baseline are equally good (the observed difference is due to chance), and the bootstrap mean with
its 95% confidence half-width. The resampling is seeded (sacrebleu's default seed 12345), so
results are reproducible; the seed and sample count appear in the signature.
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
