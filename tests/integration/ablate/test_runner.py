"""``nmt ablate`` end to end on a tiny synthetic study: runs, tables, plot, skipping, resuming, report-only."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

from helpers.ablate_toys import write_study

from nmt.ablate.results import load_record
from nmt.cli import main

LABELS = ("1000", "0110-noabs")


def _mtimes(root: Path) -> dict[str, int]:
    """mtime of every run file (checkpoints, results, hypotheses) under the study directory."""
    return {str(p): p.stat().st_mtime_ns for p in root.glob("*/seed*/**/*") if p.is_file()}


def test_study_runs_skips_resumes_and_reports(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="nmt")
    study = write_study(tmp_path)
    out = tmp_path / "out"

    # 1. a full run: two settings x one seed, each trained, tested and measured
    assert main(["ablate", "--config", str(study)]) == 0
    for label in LABELS:
        run = out / label / "seed1"
        rec = load_record(run / "result.json")
        assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "test.hyp").is_file()
        assert rec.train_steps == 8 and rec.test_sentences == 30
        assert len((run / "test.hyp").read_text(encoding="utf-8").split("\n")) == 31
        assert rec.attention_flops == rec.flops["encoder_self"] + rec.flops["decoder_self"] > 0
        assert rec.flops["total"] > rec.attention_flops and rec.params > 0
        assert rec.train_tokens_per_s is not None and rec.train_tokens_per_s > 0
        assert rec.decode_sentences_per_s > 0 and 0 <= rec.bleu <= 100 and "tok:13a" in rec.bleu_signature
    assert load_record(out / "1000" / "seed1" / "result.json").absolute_positions == "yes"
    assert load_record(out / "0110-noabs" / "seed1" / "result.json").absolute_positions == "no"
    rows = list(csv.DictReader((out / "results.csv").open(encoding="utf-8")))
    assert [r["label"] for r in rows] == list(LABELS)
    assert rows[0]["p_value"] == "" and 0 < float(rows[1]["p_value"]) <= 1
    table = (out / "results.md").read_text(encoding="utf-8")
    assert "| **1000** |" in table and "| 0110-noabs |" in table and "Not finished" not in table
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert len(data["runs"]) == 2 and data["study"]["reference"] == "1000"
    (cmp,) = data["comparisons"]  # the study's extra pair, tested in the direction given
    assert (cmp["a"], cmp["b"], cmp["seeds"]) == ("1000", "0110-noabs", [1]) and 0 < cmp["p_value"] <= 1
    assert f"| 1000 | 0110-noabs | 1 | {cmp['bleu_a']:.2f} | {cmp['bleu_b']:.2f} |" in table
    assert len((out / "references.test.txt").read_text(encoding="utf-8").splitlines()) == 30

    # 2. a second invocation trains nothing and rewrites no run file
    before = _mtimes(out)
    caplog.clear()
    assert main(["ablate", "--config", str(study)]) == 0
    assert _mtimes(out) == before
    assert sum(r.getMessage().startswith("skip ") for r in caplog.records) == 2
    assert not any(r.getMessage().startswith("train ") for r in caplog.records)

    # 3. a run that was trained but not tested is tested again without training
    run = out / "0110-noabs" / "seed1"
    (run / "result.json").unlink()
    ckpt_mtime = (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    caplog.clear()
    assert main(["ablate", "--config", str(study), "--only", "0110-noabs"]) == 0
    assert (run / "result.json").is_file()
    assert (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns == ckpt_mtime
    assert any("trained already" in r.getMessage() for r in caplog.records)

    # 4. --report_only rebuilds the tables and the plot from result.json files alone
    for name in ("results.md", "results.csv", "results.json", "results.png"):
        (out / name).unlink()
    before = _mtimes(out)
    assert main(["ablate", "--config", str(study), "--report_only", "--study.seeds", "[1, 2]"]) == 0
    assert _mtimes(out) == before
    table = (out / "results.md").read_text(encoding="utf-8")
    assert "| **1000** |" in table and "Not finished: 1000 (seed 2), 0110-noabs (seed 2)." in table
    assert (out / "results.png").is_file() and not (out / "1000" / "seed2").exists()


def test_only_rejects_unknown_labels(tmp_path: Path, capsys) -> None:
    study = write_study(tmp_path)
    assert main(["ablate", "--config", str(study), "--only", "1111"]) == 2
    err = capsys.readouterr().err
    assert "--only: no setting '1111'" in err and "1000, 0110-noabs" in err
    assert not (tmp_path / "out").exists()


def test_runs_go_seed_by_seed(tmp_path: Path, monkeypatch) -> None:
    from nmt.ablate import runner

    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(runner, "run_one", lambda study, label, seed: calls.append((label, seed)))
    monkeypatch.setattr(runner, "write_report", lambda study: None)
    assert runner.run_study(str(write_study(tmp_path)), [("study.seeds", [1, 2])]) == 0
    assert calls == [(label, seed) for seed in (1, 2) for label in LABELS]  # a study cut short has every setting


def test_best_checkpoint_records_dir_and_a_fresh_machine(tmp_path: Path, caplog) -> None:
    """Averaging the best checkpoints by validation BLEU; each finished run copied into records_dir,
    from which a fresh checkout (no run directories) skips the runs and rebuilds the results."""
    caplog.set_level(logging.INFO, logger="nmt")
    study = write_study(tmp_path)
    records = tmp_path / "committed"
    args = ["ablate", "--config", str(study), "--study.test_checkpoint", "best:2", "--study.records_dir",
            str(records), "--train.save_top_k", "2"]
    assert main(args) == 0
    for label in LABELS:
        run = tmp_path / "out" / label / "seed1"
        rec = load_record(records / label / "seed1.json")
        assert rec.checkpoint == "average_best2.ckpt" and (run / "average_best2.ckpt").is_file()
        assert rec.val_bleu is None and rec.wall_seconds is not None and rec.wall_seconds > 0
        assert rec.test_seconds is not None and 0 < rec.test_seconds < rec.wall_seconds
        assert rec.run_seconds == rec.train_seconds_total + rec.test_seconds  # trained in one process
        assert (records / label / "seed1.hyp").read_text(encoding="utf-8") == (run / "test.hyp").read_text(encoding="utf-8")
        assert not (run / "RUNNING").exists()
    first = json.loads((records / "results.json").read_text(encoding="utf-8"))
    assert (records / "references.test.txt").is_file() and (records / "results.png").is_file()

    import shutil

    shutil.rmtree(tmp_path / "out")  # a fresh machine: only the committed folder is left
    caplog.clear()
    assert main(args) == 0
    assert sum(r.getMessage().startswith("skip ") for r in caplog.records) == 2 and not (tmp_path / "out").exists()
    again = json.loads((records / "results.json").read_text(encoding="utf-8"))
    assert again["runs"] == first["runs"] and again["comparisons"] == first["comparisons"]  # p-values too


def test_best_checkpoint_and_early_stopping(tmp_path: Path) -> None:
    from nmt.checkpoint import Checkpoint

    study = write_study(tmp_path)
    assert main(["ablate", "--config", str(study), "--only", "1000", "--study.test_checkpoint", "best",
                 "--train.max_steps", "60", "--train.val_every_steps", "2", "--train.patience", "1"]) == 0
    run = tmp_path / "out" / "1000" / "seed1"
    rec = load_record(run / "result.json")
    assert rec.checkpoint.startswith("checkpoints/step") and rec.val_bleu is not None
    assert rec.val_bleu == Checkpoint.load(run / rec.checkpoint).val_bleu
    assert rec.train_steps < 60  # stopped by patience, not by the budget
    steps = [int(s) for s, _ in rec.val_curve or []]
    assert steps == list(range(2, rec.train_steps + 1, 2))  # every validation, in order
    assert max(b for _, b in rec.val_curve or []) == rec.val_bleu  # the tested checkpoint is the best


def test_best_n_needs_enough_kept_checkpoints(tmp_path: Path, capsys) -> None:
    study = write_study(tmp_path)
    assert main(["ablate", "--config", str(study), "--study.test_checkpoint", "best:3"]) == 2
    assert "needs train.save_top_k >= 3, got 1" in capsys.readouterr().err
    assert main(["ablate", "--config", str(study), "--study.test_checkpoint", "top3"]) == 2
    assert "test_checkpoint: expected last, best or best:N" in capsys.readouterr().err


def test_blind_sets_translated_recorded_and_provenance(tmp_path: Path) -> None:
    """Each run translates the study's blind sets with its test checkpoint; the hypotheses go beside
    the test's into records_dir, and the record names the code version, the hardware and the summed
    training time."""
    import torch
    from helpers.ablate_toys import sentences

    from nmt.provenance import hardware

    study = write_study(tmp_path)
    blind = tmp_path / "raw" / "blind" / "toy"
    blind.mkdir(parents=True)
    (blind / "later.en").write_text("".join(s + "\n" for s in sentences(7, seed=9)), encoding="utf-8")
    study.write_text(study.read_text(encoding="utf-8") + "blind_sets: [later]\nblind_dir: blind/toy\n"
                     f"records_dir: {tmp_path / 'committed'}\n", encoding="utf-8")
    assert main(["ablate", "--config", str(study), "--only", "1000"]) == 0
    run = tmp_path / "out" / "1000" / "seed1"
    rec = load_record(tmp_path / "committed" / "1000" / "seed1.json")
    assert rec.blind_hypotheses == {"later": "blind.later.hyp"}
    kept = (tmp_path / "committed" / "1000" / "seed1.blind.later.hyp").read_text(encoding="utf-8")
    assert kept == (run / "blind.later.hyp").read_text(encoding="utf-8") and len(kept.splitlines()) == 7
    assert rec.code_versions and len(rec.code_versions) == 1
    assert rec.hardware == [hardware()] and torch.backends.cpu.get_cpu_capability() in rec.hardware[0]
    assert rec.train_seconds_total is not None and rec.train_seconds_total > 0


def test_a_missing_blind_set_stops_before_training(tmp_path: Path, caplog) -> None:
    study = write_study(tmp_path)
    study.write_text(study.read_text(encoding="utf-8") + "blind_sets: [absent]\n", encoding="utf-8")
    assert main(["ablate", "--config", str(study), "--only", "1000"]) == 1
    assert "absent.en not found" in caplog.text
    assert not (tmp_path / "out" / "1000" / "seed1" / "checkpoints").exists()


def test_a_run_held_by_another_process_is_skipped(tmp_path: Path, caplog) -> None:
    """Two processes on one study: the run another live process holds (its RUNNING lock) is left
    to it; the lock of a process that has died is taken over."""
    import os
    import socket

    caplog.set_level(logging.INFO, logger="nmt")
    study = write_study(tmp_path)
    held = tmp_path / "out" / "1000" / "seed1"
    held.mkdir(parents=True)
    (held / "RUNNING").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": 0}),
                                  encoding="utf-8")
    assert main(["ablate", "--config", str(study), "--only", "1000"]) == 0
    assert "in use by process" in caplog.text and not (held / "result.json").exists()
    (held / "RUNNING").write_text(json.dumps({"pid": 2**22 + 7, "host": socket.gethostname(), "since": 0}),
                                  encoding="utf-8")  # a pid that does not exist
    assert main(["ablate", "--config", str(study), "--only", "1000"]) == 0
    assert "taking over a stale lock" in caplog.text and (held / "result.json").is_file()
    assert not (held / "RUNNING").exists()


def test_analyze_settings_are_analysed_once_and_committed(tmp_path: Path, caplog) -> None:
    """A setting named in ``analyze`` is analysed after its run (test split, removal per role) and
    the report's tables go beside its record; it is not redone, a lost report is redone from the run
    directory, and a run whose checkpoint is gone is left with its record and a warning."""
    caplog.set_level(logging.INFO, logger="nmt")
    study = write_study(tmp_path)
    records = tmp_path / "committed"
    study.write_text(study.read_text(encoding="utf-8") + f'records_dir: {records}\nanalyze: ["1000"]\n',
                     encoding="utf-8")
    assert main(["ablate", "--config", str(study)]) == 0
    report = records / "1000" / "seed1.analyze"
    assert sorted(p.name for p in report.iterdir()) == sorted(
        ["analysis.md", "analysis.json", "contributions.csv", "ablation.csv", "summary.txt",
         "terms_cross.png", "terms_decoder.png", "terms_encoder.png"])
    rows = list(csv.DictReader((report / "ablation.csv").open(encoding="utf-8")))
    assert [(r["role"], r["layer"], r["term"]) for r in rows] == [
        ("intact", "", ""), ("encoder", "all", "E1"), ("decoder", "all", "E1"), ("cross", "all", "E1")]
    rec = load_record(records / "1000" / "seed1.json")
    assert float(rows[0]["bleu"]) == rec.bleu  # the intact row is the run's test score
    assert json.loads((report / "analysis.json").read_text(encoding="utf-8"))["sentences"] == rec.test_sentences
    assert not (records / "0110-noabs" / "seed1.analyze").exists()

    before = (report / "analysis.json").stat().st_mtime_ns
    caplog.clear()
    assert main(["ablate", "--config", str(study)]) == 0  # done: not analysed again
    assert (report / "analysis.json").stat().st_mtime_ns == before and "analyse 1000" not in caplog.text

    shutil.rmtree(report)  # a lost report is made again from the run directory's checkpoint
    assert main(["ablate", "--config", str(study)]) == 0
    again = list(csv.DictReader((report / "ablation.csv").open(encoding="utf-8")))
    assert [(r["role"], r["term"], r["bleu"]) for r in again] == [(r["role"], r["term"], r["bleu"]) for r in rows]

    shutil.rmtree(report)
    (tmp_path / "out" / "1000" / "seed1" / rec.checkpoint).unlink()
    caplog.clear()
    assert main(["ablate", "--config", str(study)]) == 0
    assert "not analysed, its tested checkpoint" in caplog.text and not report.exists()
    assert load_record(records / "1000" / "seed1.json") == rec
