"""Sentence-level significance of one setting against another over their common seeds.

The test is ``nmt.eval.bootstrap.cluster_paired_bootstrap``: it resamples test *sentences* and
keeps every seed's hypotheses of a sentence together, so the seeds of a setting are one cluster per
sentence, not extra independent sentences. It answers "could resampling the test set explain the
difference of the seed-mean BLEU?"; the verdicts on the paper's claims use the seed-level tests of
``nmt.ablate.verdict`` (training runs as the unit), this p-value is reported beside them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from nmt.eval.bootstrap import ClusterResult, cluster_paired_bootstrap
from nmt.io import read_lines

log = logging.getLogger("nmt")


def setting_bootstrap(
    system: dict[int, Path], baseline: dict[int, Path], references: Sequence[str], n_samples: int
) -> ClusterResult | None:
    """Cluster bootstrap of a setting ({seed: hypothesis file}) against another over their common
    seeds (None when they share no seed, ``n_samples`` < 1, or a hypothesis file is missing or has
    the wrong number of lines)."""
    seeds = sorted(set(system) & set(baseline))
    if not seeds or n_samples < 1:
        return None
    missing = [str(p) for s in seeds for p in (system[s], baseline[s]) if not p.is_file()]
    if missing:
        log.warning("no p-value: hypothesis file(s) missing: %s", ", ".join(missing))
        return None
    sys_lines = [read_lines(system[s]) for s in seeds]
    base_lines = [read_lines(baseline[s]) for s in seeds]
    if any(len(x) != len(references) for x in sys_lines + base_lines):
        log.warning("no p-value: hypothesis files of seeds %s do not all have %d lines", seeds, len(references))
        return None
    logging.getLogger("sacrebleu").setLevel(logging.WARNING)
    return cluster_paired_bootstrap(sys_lines, base_lines, list(references), n_samples=n_samples)


def setting_p_value(
    system: dict[int, Path], baseline: dict[int, Path], references: Sequence[str], n_samples: int
) -> float | None:
    """Two-sided p-value of ``setting_bootstrap`` (None where it gives no result)."""
    res = setting_bootstrap(system, baseline, references, n_samples)
    return None if res is None else res.p_value
