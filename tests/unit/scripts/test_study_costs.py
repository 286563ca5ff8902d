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


def test_two_cost_definitions_and_the_lengths_where_an_order_flips(capsys) -> None:
    study = str(ROOT / "configs/ablation/repro/multi30k-ende/deform.yaml")
    rows = {r["label"]: r for r in study_costs.costs(study, 14, 15, batch_tokens=4000)}
    # a setting without relative terms has no table: both definitions agree
    assert rows["deform_conv"]["attention_flops"] == rows["deform_conv"]["attention_flops_per_batch"]
    # 1111 pays its table per sentence; shared by the 285 sentences of a 4,000-token batch it nearly vanishes
    assert rows["1111"]["attention_flops"] > rows["1111"]["attention_flops_per_batch"]
    assert rows["0010+deform_conv"]["attention_flops"] < rows["1111+deform_conv"]["attention_flops"]
    found = {(f["a"], f["b"], f["definition"]): f for f in study_costs.flips(study, range(2, 64))}
    # the joint form is always cheaper than 1111 with tables per sentence; per batch only from some length on
    assert found[("1111", "0010_deform_conv", "per sentence")]["flips_at"] == []
    assert not found[("1111", "0010_deform_conv", "per sentence")]["a_cheaper_at_start"]
    per_batch = found[("1111", "0010_deform_conv", "per batch")]
    assert per_batch["a_cheaper_at_start"] and len(per_batch["flips_at"]) == 1
    assert found[("0010+deform_conv", "1111+deform_conv", "per batch")]["flips_at"] == []  # claim 5: never flips
    assert study_costs.main([study, "--flip"]) == 0
    assert "| 0100 | 1111 | per sentence |" in capsys.readouterr().out
