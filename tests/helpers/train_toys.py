"""Helpers of the training tests: a loss recorder and fit() with extra callbacks."""

from __future__ import annotations

import lightning as L

import nmt.train.fit as fit_mod


class LossRecorder(L.Callback):
    """Training loss per update (``global_step`` after the update -> loss)."""

    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.losses[trainer.global_step] = float(outputs["loss"])


def fit_recording(cfg, ckpt_path=None, callbacks=()) -> dict[int, float]:
    """``fit(cfg, ckpt_path)`` with ``callbacks`` added; the losses of the updates it ran (also when
    it stops by raising)."""
    recorder = LossRecorder()
    original = fit_mod.build_trainer

    def with_callbacks(c, **kw):
        trainer = original(c, **kw)
        trainer.callbacks.extend([recorder, *callbacks])
        return trainer

    fit_mod.build_trainer = with_callbacks
    try:
        fit_mod.fit(cfg, ckpt_path, enable_progress_bar=False)
    finally:
        fit_mod.build_trainer = original
    return recorder.losses
