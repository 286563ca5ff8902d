"""Filtering of training pairs: each rule's drops are counted, valid/test are untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nmt.data.config import FilterConfig
from nmt.data.errors import DataError
from nmt.data.filters import filter_pairs
from nmt.data.prepare import load_prepared, prepare


def test_rules_counted_in_order():
    src = np.array([0, 3, 50, 4, 4, 1, 10])
    tgt = np.array([2, 3, 4, 40, 4, 1, 30])
    blank = np.array([True, False, False, False, False, False, False])
    keep, counts = filter_pairs(src, tgt, blank, FilterConfig(min_len=2, max_len=30, max_ratio=2.5))
    # pair 0 blank; pair 5 too short; pairs 2, 3 too long; pair 6 ratio 3.0 > 2.5
    assert keep.tolist() == [False, True, False, False, True, False, False]
    assert counts == {"empty": 1, "too_short": 1, "too_long": 2, "ratio": 1}


def test_rules_can_be_switched_off():
    src, tgt = np.array([0, 100]), np.array([0, 1])
    keep, counts = filter_pairs(src, tgt, np.array([True, False]),
                                FilterConfig(drop_empty=False, min_len=0, max_len=0, max_ratio=0))
    assert keep.all() and counts == {}


@pytest.mark.parametrize("kw, option", [({"max_ratio": 0.5}, "max_ratio"), ({"min_len": -1}, "min_len"),
                                        ({"min_len": 5, "max_len": 3}, "max_len")])
def test_bad_filter_options(kw, option):
    with pytest.raises(DataError, match=f"data.filter.{option}"):
        filter_pairs(np.array([1]), np.array([1]), np.array([False]), FilterConfig(**kw))


def test_prepare_counts_filtered_pairs(toy, capsys):
    raw = Path(toy.root) / "toy"
    src = (raw / "train.en").read_text(encoding="utf-8").splitlines()
    tgt = (raw / "train.de").read_text(encoding="utf-8").splitlines()
    src[:4] = ["", "   ", "the dog", "the dog " * 40]
    tgt[:4] = ["der Hund", "der Hund", "", "der Hund " * 40]
    src[4], tgt[4] = "the dog", "the dog " * 12
    (raw / "train.en").write_text("\n".join(src) + "\n", encoding="utf-8")
    (raw / "train.de").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    for side in ("en", "de"):  # an empty pair in valid: kept
        with open(raw / f"valid.{side}", "a", encoding="utf-8") as f:
            f.write("\n")
    toy.filter = FilterConfig(max_len=60, max_ratio=5.0)
    summary = prepare(toy, progress=True)
    train = summary.splits["train"]
    assert train.filtered == {"empty": 3, "too_short": 0, "too_long": 1, "ratio": 1}
    assert train.sentences == 300 - 5 and train.input_pairs == 300
    assert summary.splits["valid"].sentences == 41 and summary.splits["valid"].filtered == {}
    out = capsys.readouterr().out
    assert "empty=3" in out and "too_long=1" in out and "ratio=1" in out
    data = load_prepared(toy)
    assert data.splits["train"].line[:3].tolist() == [5, 6, 7]
    assert data.target_text("train")[0] == tgt[5]
