"""ThroughputRecorder: target tokens/s per window of training batches, validation excluded."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from nmt.train import throughput
from nmt.train.throughput import ThroughputRecorder


def batch(real: int, padded: int) -> SimpleNamespace:
    return SimpleNamespace(tgt_padding_mask=torch.tensor([[False] * real + [True] * padded]))


def test_windows_count_real_target_tokens_and_drop_validation(monkeypatch) -> None:
    # read at the first batch's start and the last batch's end of each window
    clock = iter([0.0, 2.0,  # window 1: 2 s
                  10.0,  # a batch, then validation cuts the window: dropped
                  20.0, 21.0,  # window 2: 1 s
                  30.0, 30.2])  # window 3: 0.2 s
    monkeypatch.setattr(throughput.time, "perf_counter", lambda: next(clock))
    rec = ThroughputRecorder(window=2)
    for _ in range(2):
        rec.on_train_batch_start(None, None, None, 0)
        rec.on_train_batch_end(None, None, None, batch(30, 10), 0)  # 30 real tokens each
    rec.on_train_batch_start(None, None, None, 0)
    rec.on_train_batch_end(None, None, None, batch(50, 0), 0)
    rec.on_validation_start(None, None)
    for n in (40, 60):
        rec.on_train_batch_start(None, None, None, 0)
        rec.on_train_batch_end(None, None, None, batch(n, 3), 0)
    for n in (10, 10):
        rec.on_train_batch_start(None, None, None, 0)
        rec.on_train_batch_end(None, None, None, batch(n, 0), 0)
    assert rec.rates == pytest.approx([30.0, 100.0, 100.0])
    assert rec.median() == pytest.approx(100.0)  # first (warm-up) window left out


def test_no_window_means_no_speed() -> None:
    assert ThroughputRecorder(window=5).median() is None
    with pytest.raises(ValueError, match="window must be >= 1"):
        ThroughputRecorder(window=0)
