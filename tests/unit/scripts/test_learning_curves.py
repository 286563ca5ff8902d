"""scripts/learning_curves.py: one figure of a family's validation curves, twins drawn once."""

from __future__ import annotations

from pathlib import Path

import learning_curves
from helpers.ablate_toys import toy_record, write_campaign, write_study

from nmt.ablate.report import record_path
from nmt.ablate.results import RunRecord, save_json_atomic
from nmt.ablate.study import load_study
from nmt.config import to_dict

PNG = b"\x89PNG\r\n\x1a\n"


def record(label: str, seed: int, curve: list[list[float]]) -> RunRecord:
    return toy_record(label, seed, spec=label.split("-")[0], val_curve=curve)


def test_curves_of_a_family(tmp_path: Path, capsys) -> None:
    study_file = write_study(tmp_path)
    records = tmp_path / "records"
    text = study_file.read_text(encoding="utf-8").replace("seeds: [1]", "seeds: [1, 2]")
    study_file.write_text(text + f"records_dir: {records}\n", encoding="utf-8")
    study = load_study(study_file)
    for label in ("1000", "0110-noabs"):
        for seed in (1, 2):
            save_json_atomic(record_path(study, label, seed),
                             to_dict(record(label, seed, [[250.0, 10.0 + seed], [500.0, 20.0 + seed]])))
    campaign = write_campaign(tmp_path, study_file)
    data = learning_curves.curves(str(campaign), "toy en->de")
    assert sorted(data) == ["self:0110-noabs", "self:1000"] and sorted(data["self:1000"]) == [1, 2]
    assert data["self:1000"][2] == [(250.0, 12.0), (500.0, 22.0)]
    out = tmp_path / "curves.png"
    assert learning_curves.main([str(campaign), "--family", "toy en->de", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG and "4 runs of 2 settings" in capsys.readouterr().out
    assert learning_curves.main([str(campaign), "--family", "nope", "--out", str(out)]) == 2
