"""Campaign files: status of the runs, and verdicts decided from (synthetic) finished runs."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import torch
from helpers.ablate_toys import write_study

from nmt.ablate.results import RunRecord, save_json_atomic
from nmt.cli import main
from nmt.config import to_dict

CAMPAIGN = """\
name: toy campaign
results_dir: {out}
margin: 1.0
families:
  - {{name: "toy en->de", studies: {{self: study.yaml}}}}
claims:
  - id: "3"
    text: "0110 is close to 1000"
    parts: [{{study: self, a: "0110-noabs", b: "1000", test: close}}]
  - id: "2"
    text: "a cross-attention claim (no cross study here: out of scope)"
    parts: [{{study: cross, a: "0111", b: "1111", test: worse}}]
"""


def record(label: str, seed: int, bleu: float, wall: float, **extra: Any) -> RunRecord:
    return RunRecord(
        label=label, seed=seed, spec=label, decoder_spec=None, vary="self", absolute_positions="no",
        bleu=bleu, chrf=bleu + 20, bleu_signature="nrefs:1|tok:13a", chrf_signature="nrefs:1|nc:6",
        test_sentences=3, flops={"encoder_self": 1, "decoder_self": 1, "total": 5}, attention_flops=2,
        params=10, train_steps=8, train_tokens_per_s=None, decode_sentences_per_s=1.0, hypotheses="test.hyp",
        checkpoint="checkpoints/last.ckpt", wall_seconds=wall, **extra,
    )


def setup(tmp_path: Path) -> Path:
    write_study(tmp_path)
    path = tmp_path / "campaign.yaml"
    path.write_text(CAMPAIGN.format(out=tmp_path / "verdicts"), encoding="utf-8")
    return path


def finish(tmp_path: Path, label: str, seed: int, bleu: float, wall: float = 600.0, **extra: Any) -> None:
    save_json_atomic(tmp_path / "out" / label / f"seed{seed}" / "result.json",
                     to_dict(record(label, seed, bleu, wall, **extra)))


def test_status_counts_done_running_interrupted_and_estimates_time(tmp_path: Path, capsys) -> None:
    campaign = setup(tmp_path)
    seeds = ["--study.seeds", "[1, 2, 3, 4]", "--study.bootstrap_samples", "0"]
    finish(tmp_path, "1000", 1, 30.0, wall=480.0,  # an old record: its wall time is the whole run
           val_curve=[[2, 10.0], [4, 20.0], [6, 25.5], [8, 24.0]])
    # resumed: its last process trained 120 s and tested 240 s, the run took 1,200 s of training
    finish(tmp_path, "1000", 2, 30.0, wall=360.0, train_seconds_total=1200.0, test_seconds=240.0)
    running = tmp_path / "out" / "1000" / "seed3"
    save_json_atomic(running / "RUNNING", {"pid": os.getpid(), "host": socket.gethostname(), "since": 0})
    (running / "checkpoints").mkdir(parents=True)
    torch.save({"global_step": 6}, running / "checkpoints" / "last.ckpt")  # 6 of its 8 updates done
    stale = tmp_path / "out" / "0110-noabs" / "seed1"
    save_json_atomic(stale / "RUNNING", {"pid": 2**22 + 7, "host": "elsewhere", "since": 0})
    assert main(["ablate", "--config", str(campaign), "--status", *seeds]) == 0
    out = capsys.readouterr().out
    # 8 updates per run at (480 / 8 + 1440 / 8) / 2 = 120 s each: 1000/seed3 has 2 left (4 min),
    # the other five runs 8 each (80 min)
    assert "| 2/8 | 1000/seed3 at 6 | 1 | 6 | 1 h 24 min |" in out
    assert "6 run(s) left; estimated 1 h 24 min of one stream" in out
    # the finished runs: validation BLEU at 2, 4, 6 and 8 of the 8 updates, the best, hours, s/update
    assert "| tiny | 1000 | 1 | 30.00 | 50.00 | 10.00 / 20.00 / 25.50 / 24.00 | 25.50 (6) | 0.1 | 60.00 | – |" in out
    assert "| tiny | 1000 | 2 | 30.00 | 50.00 | – / – / – / – | – | 0.4 | 180.00 | – |" in out
    assert main(["ablate", "--config", str(tmp_path / "study.yaml"), "--status", *seeds]) == 0  # a study file too
    out = capsys.readouterr().out
    assert "| 2/8 |" in out and "| tiny | 1000 | 1 |" in out
    finished_none = setup(tmp_path / "fresh")
    assert main(["ablate", "--config", str(finished_none), "--status", *seeds]) == 0
    assert "No run has finished yet." in capsys.readouterr().out


def test_status_shares_the_time_left_among_the_runs_running_side_by_side(tmp_path: Path, capsys) -> None:
    campaign = setup(tmp_path)
    seeds = ["--study.seeds", "[1, 2, 3]", "--study.bootstrap_samples", "0"]
    finish(tmp_path, "1000", 1, 30.0, wall=960.0)  # 120 s per update: 8 updates per run, 16 min
    for label in ("1000", "0110-noabs"):  # two streams, one run each
        save_json_atomic(tmp_path / "out" / label / "seed2" / "RUNNING",
                         {"pid": os.getpid(), "host": socket.gethostname(), "since": 0})
    assert main(["ablate", "--config", str(campaign), "--status", *seeds]) == 0
    out = capsys.readouterr().out
    assert "5 run(s) left; estimated 1 h 20 min of one stream" in out
    assert "; about 40 min with the 2 runs now running side by side." in out
    (tmp_path / "out" / "0110-noabs" / "seed2" / "RUNNING").unlink()  # one stream: no share
    assert main(["ablate", "--config", str(campaign), "--status", *seeds]) == 0
    assert "side by side" not in capsys.readouterr().out


def test_status_counts_no_time_for_runs_a_twin_trains(tmp_path: Path, capsys) -> None:
    """A twin study (the same configs, another output directory) trains nothing of its own: its runs
    that have not started are copies of the first study's, left but without time; one that started
    itself trains and counts."""
    campaign = setup(tmp_path)
    twin = (tmp_path / "study.yaml").read_text(encoding="utf-8").replace("name: tiny", "name: tiny2")
    (tmp_path / "study2.yaml").write_text(twin.replace(str(tmp_path / "out"), str(tmp_path / "out2")), encoding="utf-8")
    campaign.write_text(campaign.read_text(encoding="utf-8").replace(
        "studies: {self: study.yaml}", "studies: {self: study.yaml, twin: study2.yaml}"), encoding="utf-8")
    seeds = ["--study.seeds", "[1, 2]", "--study.bootstrap_samples", "0"]
    finish(tmp_path, "1000", 1, 30.0, wall=960.0)  # 120 s per update: 8 updates per run, 16 min
    assert main(["ablate", "--config", str(campaign), "--status", *seeds]) == 0
    out = capsys.readouterr().out
    assert "| tiny (" in out and "| 1/4 | 0 | 0 | 3 | 48 min |" in out  # the first study trains 3 more
    assert "| 0/4 | 0 | 0 | 4 (4 copied from twins) | 0 min |" in out
    assert "7 run(s) left (4 of them copied from a twin's training); estimated 48 min of one stream" in out
    (tmp_path / "out2" / "1000" / "seed2").mkdir(parents=True)  # started in the twin study: trains there
    assert main(["ablate", "--config", str(campaign), "--status", *seeds]) == 0
    out = capsys.readouterr().out
    assert "| 0/4 | 0 | 1 | 4 (3 copied from twins) | 16 min |" in out
    assert "7 run(s) left (3 of them copied from a twin's training); estimated 1 h 04 min" in out


def test_verdicts_are_decided_from_the_records_and_written(tmp_path: Path, capsys) -> None:
    campaign = setup(tmp_path)
    for seed, (a, b) in enumerate([(30.1, 30.0), (29.4, 29.5), (31.0, 31.1), (30.3, 30.2), (30.0, 30.0)], 1):
        finish(tmp_path, "0110-noabs", seed, a, hardware=["CPU A, AVX2"] if seed > 1 else None)
        finish(tmp_path, "1000", seed, b, hardware=["CPU A, AVX2", "CPU B, AVX512"] if seed == 5 else ["CPU A, AVX2"])
    args = ["ablate", "--config", str(campaign), "--verdicts", "--study.seeds", "[1, 2, 3, 4, 5]"]
    assert main(args) == 0
    out = capsys.readouterr().out
    # what the runs trained on (a run resumed on another processor under both)
    assert "Trained on: CPU A, AVX2 (8 runs); CPU A, AVX2 + CPU B, AVX512 (1 run); not recorded (1 run)." in out
    assert "| 3. 0110 is close to 1000 | " in out and "| **reproduced** | – |" in out
    assert "cross-attention claim" not in out
    assert "0110-noabs vs 1000 (self): −1 < A − B < 1 | 5 | 30.16 / 30.16 | +0.00 [" in out
    data = json.loads((tmp_path / "verdicts" / "verdicts.json").read_text(encoding="utf-8"))
    fam = data["families"]["toy en->de"]
    assert fam["claims"]["3"]["verdict"] == "reproduced" and fam["parts"][0]["stats"]["seeds"] == [1, 2, 3, 4, 5]
    assert (tmp_path / "verdicts" / "verdicts.md").read_text(encoding="utf-8") == out


def test_verdicts_stay_pending_until_every_planned_seed_has_finished(tmp_path: Path, capsys) -> None:
    campaign = setup(tmp_path)
    for seed, (a, b) in enumerate([(30.1, 30.0), (29.4, 29.5), (31.0, 31.1), (30.3, 30.2)], 1):
        finish(tmp_path, "0110-noabs", seed, a)
        finish(tmp_path, "1000", seed, b)
    finish(tmp_path, "1000", 5, 30.0,  # seed 5 of one setting only: the pair has 4 of its 5
           sublayer_ms={"30": 1.5, "100": 4.25}, attention_flops_per_batch=1_500_000_000)
    assert main(["ablate", "--config", str(campaign), "--verdicts", "--study.seeds", "[1, 2, 3, 4, 5]"]) == 0
    out = capsys.readouterr().out
    assert "0110-noabs vs 1000 (self): −1 < A − B < 1 | 4 of 5 | – | – | – | – | pending |" in out
    # the measured cost per setting is shown while pending (means over the runs that have each figure)
    assert "| 1000 (self) | 5 | 0.0 | 1.5 | 0.00 | 1.50 / 4.25 | – |" in out
    assert "| 0110-noabs (self) | 4 | 0.0 | – | 0.00 | – / – | – |" in out
    assert "| **pending** |" in out and "30.20" not in out and "+0.00" not in out  # no mean of any kind
    fam = json.loads((tmp_path / "verdicts" / "verdicts.json").read_text(encoding="utf-8"))["families"]["toy en->de"]
    assert fam["claims"]["3"]["verdict"] == "pending" and fam["parts"][0]["stats"] is None
    assert fam["parts"][0]["seeds_done"] == 4 and fam["parts"][0]["seeds_planned"] == 5


def test_the_seed_rule_fixes_the_seed_count_on_the_first_seeds_and_the_campaign_runs_to_it(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """Seeds 1-3 differ by +0.6, -0.5, +0.1 (SD 0.55): the paired TOST at margin 1 and level 0.05
    (one claim) has power 0.74 with 4 seeds and 0.90 with 5, so the rule plans 5 seeds."""
    from nmt.ablate import runner
    from nmt.ablate.power import tost_power

    assert tost_power(4, 0.5508, 1.0, 0.05) < 0.8 <= tost_power(5, 0.5508, 1.0, 0.05)
    campaign = setup(tmp_path)
    campaign.write_text(campaign.read_text(encoding="utf-8") + "seed_rule: {first: [1, 2, 3], min_seeds: 4}\n",
                        encoding="utf-8")
    diff = {1: 0.6, 2: -0.5, 3: 0.1, 4: 0.0, 5: 0.2}
    trained: list[tuple[str, int]] = []
    seen_plans: list[bool] = []

    def fake_run(study, **_kw) -> int:
        for s in study.settings:
            for seed in study.seeds:
                if runner.finished_record_path(study, s.label, seed) is None:
                    trained.append((s.label, seed))
                    seen_plans.append((tmp_path / "verdicts" / "toy-en-de.seeds.json").is_file())
                    bleu = 30.0 + (diff[seed] if s.label == "0110-noabs" else 0.0)
                    run = study.run_dir(s.label, seed)
                    save_json_atomic(run / "result.json", to_dict(record(s.label, seed, bleu, 60.0)))
                    (run / "test.hyp").write_text("x\n", encoding="utf-8")
        return 0

    monkeypatch.setattr(runner, "run_loaded", fake_run)
    seeds = ["--study.seeds", "[1, 2, 3, 4]", "--study.bootstrap_samples", "0"]
    # before anything has run: pending, count not decided
    assert main(["ablate", "--config", str(campaign), "--verdicts", *seeds]) == 0
    assert "| 0 of ? |" in capsys.readouterr().out
    assert main(["ablate", "--config", str(campaign), "--status", *seeds]) == 0
    assert "| toy en->de | 4 | to be decided when seeds 1, 2, 3 of every compared setting are in |" in capsys.readouterr().out
    assert main(["ablate", "--config", str(campaign), *seeds]) == 0
    assert [seed for _, seed in trained] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # the study file says 4; the rule 5
    assert seen_plans == [False] * 6 + [True] * 4  # decided after seed 3, before seed 4
    plan = json.loads((tmp_path / "verdicts" / "toy-en-de.seeds.json").read_text(encoding="utf-8"))
    assert plan["seeds"] == 5 and plan["first"] == [1, 2, 3] and abs(plan["pooled_sd"] - 0.5508) < 1e-4
    table = (tmp_path / "verdicts" / "toy-en-de.seeds.md").read_text(encoding="utf-8")
    assert "| 0.55 |" in table and "**5**" in table and "0.07" not in table  # blinded: no mean (+0.07 here)
    verdicts = json.loads((tmp_path / "verdicts" / "verdicts.json").read_text(encoding="utf-8"))
    part = verdicts["families"]["toy en->de"]["parts"][0]
    assert part["stats"]["seeds"] == [1, 2, 3, 4, 5] and part["verdict"] != "pending"
    # every later command sees the planned seeds: nothing left to run
    assert main(["ablate", "--config", str(campaign), "--status", *seeds]) == 0
    out = capsys.readouterr().out
    assert "| 10/10 |" in out and f"| toy en->de | 5 | decided ({tmp_path / 'verdicts' / 'toy-en-de.seeds.md'}) |" in out
    (tmp_path / "verdicts" / "toy-en-de.seeds.json").write_text("{}", encoding="utf-8")
    assert main(["ablate", "--config", str(campaign), "--status", *seeds]) == 2
    assert "toy-en-de.seeds.json: not a seed decision" in capsys.readouterr().err


def test_the_verdicts_page_counts_each_run_once_by_what_it_trained_on(tmp_path: Path, capsys) -> None:
    """Runs of the same label in two studies are two runs unless they are twins (same config)."""
    campaign = setup(tmp_path)
    study = (tmp_path / "study.yaml").read_text(encoding="utf-8")
    for name, extra in (("twin", ""), ("other", "overrides: {model.dropout: 0.3}\n")):  # "other": not twins
        (tmp_path / f"{name}.yaml").write_text(study.replace("name: tiny", f"name: {name}").replace(
            str(tmp_path / "out"), str(tmp_path / name)) + extra, encoding="utf-8")
    campaign.write_text(campaign.read_text(encoding="utf-8").replace(
        "studies: {self: study.yaml}", "studies: {self: study.yaml, twin: twin.yaml, other: other.yaml}"),
        encoding="utf-8")
    for folder in ("out", "twin", "other"):
        for label in ("1000", "0110-noabs"):
            save_json_atomic(tmp_path / folder / label / "seed1" / "result.json",
                             to_dict(record(label, 1, 30.0, 60.0, hardware=[f"CPU {folder}"])))
    assert main(["ablate", "--config", str(campaign), "--verdicts"]) == 0
    assert "Trained on: CPU other (2 runs); CPU out (2 runs)." in capsys.readouterr().out


def test_bad_campaigns_are_rejected_with_the_key(tmp_path: Path, capsys) -> None:
    campaign = setup(tmp_path)
    campaign.write_text(campaign.read_text(encoding="utf-8").replace('a: "0110-noabs"', 'a: "0110"'), encoding="utf-8")
    assert main(["ablate", "--config", str(campaign), "--verdicts"]) == 2
    assert "claim 3: family 'toy en->de' study tiny has no setting '0110'" in capsys.readouterr().err
    campaign.write_text(campaign.read_text(encoding="utf-8").replace("test: close", "test: similar"), encoding="utf-8")
    assert main(["ablate", "--config", str(campaign), "--status"]) == 2
    assert "'similar' is not one of close" in capsys.readouterr().err
    assert main(["ablate", "--config", str(tmp_path / "study.yaml"), "--verdicts"]) == 2
    assert "verdicts need a campaign file" in capsys.readouterr().err
    campaign.write_text(campaign.read_text(encoding="utf-8").replace("test: similar", "test: close")
                        + "seed_rule: {first: [1], min_seeds: 4}\n", encoding="utf-8")
    assert main(["ablate", "--config", str(campaign), "--status"]) == 2
    assert f"{campaign}: seed_rule: needs two or more distinct first seeds" in capsys.readouterr().err


def test_campaign_runs_seed_by_seed_and_trains_twins_once(tmp_path: Path, monkeypatch) -> None:
    from nmt.ablate import runner

    campaign = setup(tmp_path)
    twin = tmp_path / "study2.yaml"  # the same runs in another directory, committed to a records folder
    twin.write_text((tmp_path / "study.yaml").read_text(encoding="utf-8").replace("name: tiny", "name: tiny2")
                    .replace(str(tmp_path / "out"), str(tmp_path / "out2"))
                    + f"records_dir: {tmp_path / 'rec2'}\n", encoding="utf-8")
    campaign.write_text(campaign.read_text(encoding="utf-8").replace(
        "studies: {self: study.yaml}", "studies: {self: study.yaml, twin: study2.yaml}"), encoding="utf-8")
    trained: list[tuple[str, str, int]] = []

    def fake_run(study, **_kw) -> int:  # "trains" what is not finished, with the seeds it is given
        for s in study.settings:
            for seed in study.seeds:
                if runner.finished_record_path(study, s.label, seed) is None:
                    trained.append((study.name, s.label, seed))
                    run = study.run_dir(s.label, seed)
                    save_json_atomic(run / "result.json", to_dict(record(s.label, seed, 30.0, 60.0)))
                    (run / "test.hyp").write_text("x\n", encoding="utf-8")
        return 0

    monkeypatch.setattr(runner, "run_loaded", fake_run)
    assert main(["ablate", "--config", str(campaign), "--study.seeds", "[1, 2]", "--study.bootstrap_samples", "0"]) == 0
    assert trained == [("tiny", "1000", 1), ("tiny", "0110-noabs", 1), ("tiny", "1000", 2), ("tiny", "0110-noabs", 2)]
    for label in ("1000", "0110-noabs"):
        for seed in (1, 2):
            assert (tmp_path / "out2" / label / f"seed{seed}" / "SHARED_FROM").is_file()
            copied = json.loads((tmp_path / "rec2" / label / f"seed{seed}.json").read_text(encoding="utf-8"))
            assert copied["label"] == label and (tmp_path / "rec2" / label / f"seed{seed}.hyp").is_file()
    assert (tmp_path / "verdicts" / "verdicts.md").is_file() and (tmp_path / "rec2" / "results.md").is_file()
    from nmt.ablate.campaign import load_campaign
    from nmt.ablate.status import finished_runs

    table = finished_runs(load_campaign(campaign, [("study.seeds", [1, 2])]).studies())
    assert table.count("| tiny |") == 4 and "| tiny2 |" not in table  # each run once, under its first study
    assert "| tiny | 1000 | 2 | 30.00 | 50.00 | – / – / – / – | – | 0.0 | 7.50 | tiny2/1000 |"  # 60 s over 8 updates in table


def test_a_run_waits_while_its_twin_has_started(tmp_path: Path) -> None:
    """Two processes share a campaign: a run whose twin has started (running elsewhere, or
    interrupted and to be resumed) waits to be copied instead of training the same model twice."""
    import os
    import socket

    from nmt.ablate.campaign import load_campaign
    from nmt.ablate.command import twin_started
    from nmt.ablate.twins import twin_groups

    campaign = setup(tmp_path)
    twin = tmp_path / "study2.yaml"
    twin.write_text((tmp_path / "study.yaml").read_text(encoding="utf-8").replace("name: tiny", "name: tiny2")
                    .replace(str(tmp_path / "out"), str(tmp_path / "out2")), encoding="utf-8")
    campaign.write_text(campaign.read_text(encoding="utf-8").replace(
        "studies: {self: study.yaml}", "studies: {self: study.yaml, twin: study2.yaml}"), encoding="utf-8")
    loaded = load_campaign(campaign)
    first, second = loaded.studies()
    busy = twin_started(twin_groups(loaded.studies()))
    assert busy(second, "1000", 1) is None and busy(first, "1000", 1) is None  # nothing started
    first.run_dir("1000", 1).mkdir(parents=True)  # interrupted in the first study
    assert "interrupted" in (busy(second, "1000", 1) or "") and busy(first, "1000", 1) is None
    save_json_atomic(first.run_dir("1000", 1) / "RUNNING", {"pid": os.getpid(), "host": socket.gethostname()})
    assert "running" in (busy(second, "1000", 1) or "")
    second.run_dir("1000", 1).mkdir(parents=True)  # started in both already: each resumes its own
    assert busy(second, "1000", 1) is None
    assert busy(second, "0110-noabs", 1) is None
