"""last.ckpt when training stops: at the final update, and on SIGTERM / SIGINT (then exit non-zero)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L

log = logging.getLogger("nmt")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(SystemExit):
    """Training stopped on a signal after writing last.ckpt; the exit status is ``128 + signum``."""

    def __init__(self, signum: int, checkpoint: str | Path) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.checkpoint = str(checkpoint)

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}; resume from {self.checkpoint} (--ckpt_path auto)"


class LastCheckpointOnStop(L.Callback):
    """Writes ``last_path`` after the update that reaches ``max_steps``, and on SIGTERM or SIGINT
    after the current update, then stops training by raising ``Interrupted``.

    Both are written at the same point of the loop as Lightning's step checkpoints
    (``on_train_batch_end``), so a run resumed from them continues exactly. Under DDP the ranks
    agree (any rank signalled -> all stop at the same update). A second SIGINT interrupts at once.
    Replaces Lightning's own SIGTERM handler for the duration of training, and restores it after.
    """

    def __init__(self, last_path: str | Path) -> None:
        super().__init__()
        self.last_path = str(last_path)
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: do not wait for the update to finish
        if self.signum is None:
            self.signum = signum
            log.warning("received %s: stopping after this update and writing %s",
                        signal.Signals(signum).name, self.last_path)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            log.warning("training outside the main thread: SIGTERM/SIGINT do not write last.ckpt")
            return
        for sig in SIGNALS:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        signalled = trainer.strategy.reduce_boolean_decision(self.signum is not None, all=False)
        final = 0 < trainer.max_steps <= trainer.global_step
        if signalled or final:
            trainer.save_checkpoint(self.last_path)  # atomic (the trainer's CheckpointIO plugin)
        if signalled:
            stop = Interrupted(self.signum or signal.SIGTERM, self.last_path)
            if trainer.is_global_zero:
                log.warning("update %d: %s", trainer.global_step, stop)
            raise stop

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    # before the trainer's own teardown, which restores the handlers it found when fit started
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()
