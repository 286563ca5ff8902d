"""A Lightning callback that measures training speed in target tokens per second, for callers of
``fit`` that want the number itself (``nmt ablate`` records it per run) rather than a logged scalar.

Speed is measured over windows of ``window`` training batches: target tokens (non-padding
positions of ``batch.tgt_out``) over the wall time from the first batch's start to the last
batch's end. Validation interrupts a window (it is discarded), so validation time never counts.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import lightning as L


class ThroughputRecorder(L.Callback):
    """Records target tokens/s per window of ``window`` training batches (validation excluded)."""

    def __init__(self, window: int = 50) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.rates: list[float] = []  # tokens/s of each finished window, in order
        self._t0: float | None = None
        self._tokens = 0
        self._batches = 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self._t0 is None:
            self._t0, self._tokens, self._batches = time.perf_counter(), 0, 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._t0 is None:
            return
        self._tokens += int((~batch.tgt_padding_mask).sum())
        self._batches += 1
        if self._batches == self.window:
            elapsed = time.perf_counter() - self._t0
            if elapsed > 0:
                self.rates.append(self._tokens / elapsed)
            self._t0 = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = None  # a window cut by validation is dropped

    def median(self) -> float | None:
        """Median tokens/s over the windows, leaving out the first (warm-up) when later ones exist."""
        rates = self.rates[1:] or self.rates
        return float(statistics.median(rates)) if rates else None
