"""scripts/ablation_front.py: merging studies, the Pareto front, and the errors it names."""

from __future__ import annotations

import json
from pathlib import Path

import ablation_front


def _study(d: Path, vary: str, points: dict[str, tuple[float, float]]) -> Path:
    settings = [{"label": k, "spec": k, "absolute_positions": "yes", "seeds": [1, 2], "bleu_mean": b, "bleu_std": 0.1,
                 "chrf_mean": 40.0, "chrf_std": 0.0, "attention_gflops": g, "total_gflops": g + 50, "params": 10,
                 "train_steps": 8.0, "train_tokens_per_s": None, "decode_sentences_per_s": 1.0, "p_value": 0.5,
                 "reference": False} for k, (g, b) in points.items()]
    d.mkdir(parents=True)
    (d / "results.json").write_text(json.dumps({"study": {"vary": vary}, "settings": settings, "runs": []}))
    return d


def test_front_merges_studies_and_marks_undominated_points(tmp_path: Path, capsys) -> None:
    a = _study(tmp_path / "a", "self", {"1111": (19.0, 22.0), "1000": (13.7, 20.9), "0010": (8.4, 20.8)})
    b = _study(tmp_path / "b", "self", {"1111": (99.0, 0.0), "deformable": (9.0, 22.4), "slow": (30.0, 21.0)})
    out = tmp_path / "front.png"
    assert ablation_front.main([str(a), str(b), "--reference", "1111", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()[2:]}
    assert set(rows) == {"0010", "deformable", "1000", "1111", "slow"}  # "1111" once, from the first study
    assert rows["0010"].endswith("| yes |") and rows["deformable"].endswith("| yes |")
    assert not rows["1000"].endswith("| yes |") and not rows["1111"].endswith("| yes |")  # deformable dominates
    assert "| 19 |" in rows["1111"] and out.read_bytes()[:4] == b"\x89PNG"
    assert "| 19 | 0.00 | – | 1.0 |" in rows["1111"]  # parameters and measured speeds beside the FLOPs


def test_front_rejects_mixed_attention_kinds(tmp_path: Path, capsys) -> None:
    a = _study(tmp_path / "a", "self", {"1111": (19.0, 22.0)})
    b = _study(tmp_path / "b", "cross", {"1000": (6.8, 20.3)})
    assert ablation_front.main([str(a), str(b)]) == 2
    assert "varies cross attention, the first study varies self" in capsys.readouterr().err
    assert ablation_front.main([str(tmp_path / "missing")]) == 2
    assert "no results" in capsys.readouterr().err
