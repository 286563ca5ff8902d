"""scripts/study_costs.py: parameters and FLOPs of the shipped deformable study's settings."""

from __future__ import annotations

import study_costs
from helpers.paths import REPO as ROOT


def test_deformable_study_forms_side_by_side(capsys) -> None:
    rows = {r["label"]: r for r in study_costs.costs(str(ROOT / "configs/ablation/deformable.yaml"), 14, 15)}
    for deform, plain in (("deform_attn", "deformable"), ("deform_conv", "deform_conv")):
        parallel, stacked = rows[f"0010+{plain}"], rows[f"{deform}-then-0010"]
        joint = rows[f"0010-joint-{deform}"]
        assert parallel["params"] == stacked["params"]  # the same two sublayers, summed or chained
        assert rows[plain]["params"] < joint["params"] < parallel["params"]
        assert rows[plain]["attention_flops"] < joint["attention_flops"] < parallel["attention_flops"]
    assert study_costs.main([str(ROOT / "configs/ablation/deformable.yaml")]) == 0
    assert "| 0010-joint-deform_conv | `0010&deform_conv` |" in capsys.readouterr().out
