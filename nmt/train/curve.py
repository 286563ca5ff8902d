"""A Lightning callback that keeps the validation curve (update, validation BLEU) of a run, for
callers of ``fit`` that want the numbers themselves (``nmt ablate`` records them per run). The
curve is part of the callback state saved in checkpoints, so a resumed run keeps its earlier points."""

from __future__ import annotations

from typing import Any

import lightning as L


class ValidationCurve(L.Callback):
    """Records ``[global_step, val_bleu]`` after every validation (sanity checks excluded)."""

    def __init__(self) -> None:
        self.points: list[list[float]] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        bleu = trainer.callback_metrics.get("val_bleu")
        if bleu is not None:
            step = int(trainer.global_step)
            self.points = [p for p in self.points if p[0] != step] + [[step, float(bleu)]]

    def state_dict(self) -> dict[str, Any]:
        return {"points": [list(p) for p in self.points]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.points = [list(p) for p in state_dict.get("points", [])]
