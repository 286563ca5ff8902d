"""ValidationCurve: [update, val BLEU] after each validation, kept across a resume."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from nmt.train.curve import ValidationCurve


def trainer(step: int, bleu: float | None, sanity: bool = False) -> SimpleNamespace:
    metrics = {} if bleu is None else {"val_bleu": torch.tensor(bleu)}
    return SimpleNamespace(global_step=step, callback_metrics=metrics, sanity_checking=sanity)


def test_curve_records_validations_and_survives_a_resume() -> None:
    curve = ValidationCurve()
    curve.on_validation_end(trainer(0, 0.0, sanity=True), None)  # sanity check: not a point
    curve.on_validation_end(trainer(250, 12.5), None)
    curve.on_validation_end(trainer(500, None), None)  # nothing logged: nothing recorded
    curve.on_validation_end(trainer(500, 20.0), None)
    curve.on_validation_end(trainer(500, 21.0), None)  # validated again at the same update (end of fit)
    assert curve.points == [[250, 12.5], [500, 21.0]]
    resumed = ValidationCurve()
    resumed.load_state_dict(curve.state_dict())
    resumed.on_validation_end(trainer(750, 25.0), None)
    assert resumed.points == [[250, 12.5], [500, 21.0], [750, 25.0]]
