"""scripts/validation_share.py: a validation's cost is the time its interval took beyond its updates."""

from __future__ import annotations

from pathlib import Path

import pytest
import validation_share


def test_the_extra_time_of_an_interval_with_a_validation(tmp_path: Path, capsys) -> None:
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "run"
    writer = SummaryWriter(str(run / "tb"))
    t = 1000.0
    for step in range(0, 1001, 100):  # 2 s per update; the validation after update 500 costs 60 s
        writer.add_scalar("train/loss", 1.0, step, walltime=t)
        t += 200.0 + (60.0 if step == 400 else 0.0)
    writer.add_scalar("val_bleu", 20.0, 499, walltime=1000.0 + 1000 + 30)
    writer.close()
    assert validation_share.main([str(run)]) == 0
    out = validation_share.validation_costs(run)
    assert out["validations"] == [{"update": 500, "seconds": 60.0, "updates_worth": 30.0, "s_per_update": 2.0}]
    assert out["share"] == pytest.approx(60.0 / 2060.0, abs=1e-4)
    assert '"update": 500' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        validation_share.main([str(tmp_path / "missing")])
