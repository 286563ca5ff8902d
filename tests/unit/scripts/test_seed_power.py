"""scripts/seed_power.py --pooled: the paired spread of finished studies and the seeds it implies."""

from __future__ import annotations

import json
from pathlib import Path

import seed_power

from nmt.ablate.power import seeds_for_power
from nmt.ablate.results import RunRecord
from nmt.ablate.verdict import paired_stats
from nmt.config import to_dict


def rec(label: str, seed: int, bleu: float) -> RunRecord:
    return RunRecord(label=label, seed=seed, spec=label, decoder_spec=None, vary="self", absolute_positions="no",
                     bleu=bleu, chrf=50.0, bleu_signature="b", chrf_signature="c", test_sentences=1, flops={"total": 1},
                     attention_flops=1, params=1, train_steps=1, train_tokens_per_s=None, decode_sentences_per_s=1.0,
                     hypotheses="test.hyp", checkpoint="x")


def test_pooled_spread_of_a_study(tmp_path: Path, capsys) -> None:
    runs = [rec("1111", 1, 30.0), rec("1111", 2, 31.0), rec("1111", 3, 30.5),
            rec("0110", 1, 30.2), rec("0110", 2, 30.6), rec("0110", 3, 31.1), rec("1000", 1, 25.0)]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"study": {"name": "toy", "reference": "1111", "compare": []},
                                "settings": [{"label": x} for x in ("1111", "0110", "1000")],
                                "runs": [{**to_dict(r), "total_flops": 1} for r in runs]}), encoding="utf-8")
    assert seed_power.main(["--pooled", str(path), "--margin", "1.0"]) == 0
    out = capsys.readouterr().out
    s = paired_stats(runs, "0110", "1111")
    assert s is not None
    assert f"| toy | 1 | {s.sd:.2f} |" in out  # 1000 has one seed: no spread
    assert f"Pooled over all: SD {s.sd:.2f} (2 degrees of freedom)" in out
    assert f"**{seeds_for_power(s.sd, 1.0)}**" in out
