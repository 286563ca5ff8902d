"""scripts/seed_power.py --pooled: the paired spread of finished studies and the seeds it implies."""

from __future__ import annotations

import json
from pathlib import Path

import seed_power
from helpers.ablate_toys import toy_record

from nmt.ablate.power import seeds_for_power
from nmt.ablate.results import RunRecord
from nmt.ablate.verdict import paired_stats
from nmt.config import to_dict


def rec(label: str, seed: int, bleu: float) -> RunRecord:
    return toy_record(label, seed, bleu=bleu, train_steps=1)


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


def test_the_blinded_seed_rule_shows_spread_not_means() -> None:
    from nmt.ablate.seeds import decide_seeds, seeds_markdown
    from nmt.ablate.verdict import Claim, ClaimPart

    claims = [Claim("1", "close", [ClaimPart("self", "0111", "1111", "close", 1.0),
                                   ClaimPart("self", "0011", "1111", "close", 1.0)]),
              Claim("2", "vital", [ClaimPart("cross", "0111", "1111", "worse", 1.0)]),
              Claim("9", "out of scope", [ClaimPart("conv", "a", "b", "close", 1.0)])]
    base = [rec("1111", k, 30.0 + k) for k in (1, 2, 3, 4)]
    self_runs = base + [rec("0111", k, 30.0 + k + d) for k, d in zip((1, 2, 3, 4), (0.4, -0.3, 0.1, 9.0))] + \
        [rec("0011", k, 30.0 + k + d) for k, d in zip((1, 2, 3), (-0.2, 0.3, 0.0))]
    cross_runs = base + [rec("0111", k, 27.0 + k + d) for k, d in zip((1, 2, 3), (0.1, -0.4, 0.2))]
    decision = decide_seeds(claims, {"self": self_runs, "cross": cross_runs})
    assert decision.claims == 2 and decision.level == 0.025  # Holm's first step over the two claims in scope
    assert decision.df == 6  # three parts, seeds 1-3 only (seed 4's outlier is not looked at)
    assert decision.seeds >= 4 and min(decision.claim_power.values()) >= 0.8
    text = seeds_markdown("toy", decision, (1, 2, 3), 0.8)
    assert "mean" not in text.replace("no means", "") and "Pooled SD" in text
    noisy = [rec(r.label, r.seed, r.bleu + (1.5 if r.seed == 2 else 0.0)) for r in self_runs if r.label == "0111"]
    worse = decide_seeds(claims, {"self": base + noisy + self_runs[8:], "cross": cross_runs})
    assert worse.seeds > decision.seeds  # more spread, more seeds


def test_campaign_seed_rule_prints_and_keeps_the_decision(tmp_path: Path, capsys) -> None:
    from helpers.ablate_toys import write_study

    from nmt.ablate.results import save_json_atomic

    write_study(tmp_path)
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(f"""name: toy
results_dir: {tmp_path / "verdicts"}
seed_rule: {{first: [1, 2, 3], min_seeds: 4}}
families: [{{name: "Toy en->de", studies: {{self: study.yaml}}}}]
claims: [{{id: "3", text: "close", parts: [{{study: self, a: "0110-noabs", b: "1000", test: close}}]}}]
""", encoding="utf-8")
    args = ["--campaign", str(campaign), "--family", "Toy en->de"]
    assert seed_power.main(args) == 2  # no run finished yet
    assert "no claim part has two of seeds [1, 2, 3] finished" in capsys.readouterr().err
    for seed, d in ((1, 0.6), (2, -0.5), (3, 0.1), (4, 9.0)):  # seed 4's outlier is not looked at
        for label, bleu in (("1000", 30.0), ("0110-noabs", 30.0 + d)):
            save_json_atomic(tmp_path / "out" / label / f"seed{seed}" / "result.json", to_dict(rec(label, seed, bleu)))
    assert seed_power.main(args) == 0
    out = capsys.readouterr().out
    assert "Pooled SD 0.55 (2 degrees of freedom)" in out and "**5**" in out
    assert not (tmp_path / "verdicts").exists()  # printed only
    assert seed_power.main([*args, "--write"]) == 0
    assert (tmp_path / "verdicts" / "toy-en-de.seeds.md").read_text(encoding="utf-8") == capsys.readouterr().out
    assert json.loads((tmp_path / "verdicts" / "toy-en-de.seeds.json").read_text(encoding="utf-8"))["seeds"] == 5
    assert seed_power.main(["--campaign", str(campaign), "--family", "toy"]) == 2
    assert "no family 'toy'" in capsys.readouterr().err
