"""Rules that drop training pairs, each drop counted under the first rule that matches.

Rules, in order: ``empty`` (a side is empty or blank), ``too_short`` (a side has fewer than
``min_len`` subword tokens), ``too_long`` (a side has more than ``max_len``), ``ratio`` (the longer
side has more than ``max_ratio`` times the tokens of the shorter). Lengths exclude ``</s>``.
"""

from __future__ import annotations

import logging

import numpy as np

from nmt.data.config import FilterConfig
from nmt.data.errors import DataError

log = logging.getLogger(__name__)

RULES = ("empty", "too_short", "too_long", "ratio")


def check_filter_config(cfg: FilterConfig) -> None:
    """Reject filter settings that cannot work, naming the option."""
    if cfg.min_len < 0:
        raise DataError(f"data.filter.min_len must be >= 0, got {cfg.min_len}")
    if cfg.max_len < 0 or (cfg.max_len and cfg.max_len < cfg.min_len):
        raise DataError(f"data.filter.max_len must be 0 (off) or >= min_len={cfg.min_len}, got {cfg.max_len}")
    if cfg.max_ratio < 0 or 0 < cfg.max_ratio < 1:
        raise DataError(f"data.filter.max_ratio must be 0 (off) or >= 1, got {cfg.max_ratio}")


def blank_mask(src: list[str], tgt: list[str]) -> np.ndarray:
    """(N,) bool: True where the source or the target line is empty or whitespace only."""
    return np.fromiter((not s.strip() or not t.strip() for s, t in zip(src, tgt)), dtype=bool, count=len(src))


def filter_pairs(src_len: np.ndarray, tgt_len: np.ndarray, blank: np.ndarray,
                 cfg: FilterConfig) -> tuple[np.ndarray, dict[str, int]]:
    """(N,) bool keep mask and the number of pairs each rule dropped (rules in ``RULES`` order)."""
    check_filter_config(cfg)
    keep = np.ones(len(src_len), dtype=bool)
    counts: dict[str, int] = {}
    shorter = np.minimum(src_len, tgt_len)
    longer = np.maximum(src_len, tgt_len)
    rules = {
        "empty": blank if cfg.drop_empty else None,
        "too_short": shorter < cfg.min_len if cfg.min_len > 0 else None,
        "too_long": longer > cfg.max_len if cfg.max_len > 0 else None,
        "ratio": longer > cfg.max_ratio * np.maximum(shorter, 1) if cfg.max_ratio > 0 else None,
    }
    for name in RULES:
        hit = rules[name]
        if hit is None:
            continue
        dropped = keep & hit
        counts[name] = int(dropped.sum())
        keep &= ~hit
    for name, n in counts.items():
        if n:
            log.info("filter %s dropped %d of %d training pairs", name, n, len(keep))
    return keep, counts
