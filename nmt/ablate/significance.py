"""Paired bootstrap resampling of BLEU between a setting and the study's reference setting.

Pairing: for the seeds both settings finished, the test hypotheses of each seed are concatenated
in seed order (``seed1 ++ seed2 ++ ...``) and the references repeated once per seed, so that
sentence i of seed k of the setting is paired with sentence i of seed k of the reference. The
resampling thus covers sentence and (partly) seed variation with one p-value per setting.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from nmt.eval.bootstrap import paired_test
from nmt.io import read_lines

log = logging.getLogger("nmt")


def paired_bootstrap_p(
    system: Sequence[str], baseline: Sequence[str], references: Sequence[str], n_samples: int = 1000
) -> float:
    """p-value of sacrebleu's paired bootstrap test of BLEU (``nmt.eval.bootstrap``, seed 12345):
    how likely ``system``'s BLEU difference to ``baseline`` arises from resampling alone."""
    if not len(system) == len(baseline) == len(references):
        raise ValueError(f"paired bootstrap needs as many lines in each: system {len(system)}, "
                         f"baseline {len(baseline)}, references {len(references)}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    logging.getLogger("sacrebleu").setLevel(logging.WARNING)  # it logs every statistic extraction
    results, _ = paired_test(baseline, {"system": system}, references, ("bleu",), test="bs", n_samples=n_samples)
    (p,) = [r.p_value for r in results if r.system == "system"]
    assert p is not None
    return float(p)


def concatenated(hypothesis_files: dict[int, Path], seeds: Sequence[int]) -> list[str]:
    """Hypothesis lines of ``seeds`` (in that order) from {seed: file}, concatenated."""
    lines: list[str] = []
    for seed in seeds:
        lines += read_lines(hypothesis_files[seed])
    return lines


def setting_p_value(
    system: dict[int, Path], baseline: dict[int, Path], references: Sequence[str], n_samples: int
) -> float | None:
    """p-value of a setting against the reference setting over their common seeds (None when
    they share no seed or a hypothesis file is missing or has the wrong length)."""
    seeds = sorted(set(system) & set(baseline))
    if not seeds or n_samples < 1:
        return None
    missing = [str(p) for s in seeds for p in (system[s], baseline[s]) if not p.is_file()]
    if missing:
        log.warning("no p-value: hypothesis file(s) missing: %s", ", ".join(missing))
        return None
    sys_lines, base_lines = concatenated(system, seeds), concatenated(baseline, seeds)
    refs = list(references) * len(seeds)
    if not len(sys_lines) == len(base_lines) == len(refs):
        log.warning("no p-value: %d / %d hypothesis lines for %d references x %d seeds",
                    len(sys_lines), len(base_lines), len(references), len(seeds))
        return None
    return paired_bootstrap_p(sys_lines, base_lines, refs, n_samples)
