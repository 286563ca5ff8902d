"""``nmt analyze`` end to end on a tiny trained model: the files exist and parse, and removing a
term that the checkpoint holds at zero leaves the hypotheses and scores unchanged."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nmt.analyze.ablation import FirstSentences, removals, run_ablations
from nmt.analyze.sites import attention_sites
from nmt.cli import main
from nmt.data.datamodule import NMTDataModule
from nmt.inference import load_model
from nmt.train.fit import fit


def test_analyze_writes_a_report_that_parses_and_a_zero_term_costs_nothing(make_experiment, tmp_path, capsys):
    cfg = make_experiment("an", model={"encoder_self": "1001", "decoder_self": "0110", "cross": "1011"},
                          train={"max_steps": 4, "val_every_steps": 4})
    fit(cfg, enable_progress_bar=False)  # also logs the labelled training-time heatmaps
    ckpt = cfg.train.output_dir + "/checkpoints/last.ckpt"
    out = tmp_path / "report"
    assert main(["analyze", "--checkpoint", ckpt, "--output", str(out), "--max_sentences", "4", "--beam", "1",
                 "--heatmap_sentences", "1"]) == 0
    printed = capsys.readouterr().out
    assert "in cross layer 0," in printed and "of the logit variance" in printed

    result = json.loads((out / "analysis.json").read_text())
    assert result["sentences"] == 4 and result["decode"]["beam"] == 1
    assert set(result["contributions"]) == {"encoder/layer0", "decoder/layer0", "cross/layer0"}
    cross = result["contributions"]["cross/layer0"]
    assert cross["terms"] == ["E1", "E3", "E4"]
    assert sum(cross["share"].values()) + cross["covariance_share"] == pytest.approx(1.0)
    labels = [(r["role"], r["layer"], r["term"]) for r in result["ablation"]]
    assert labels[0] == (None, None, None)  # the intact model first
    assert set(labels[1:]) == {("encoder", "all", "E1"), ("encoder", "all", "E4")} | {
        ("decoder", "all", "E2"), ("decoder", "all", "E3"), ("cross", "all", "E1"), ("cross", "all", "E3"),
        ("cross", "all", "E4")}
    for r in result["ablation"]:
        assert r["d_bleu"] == pytest.approx(r["bleu"] - result["ablation"][0]["bleu"])

    with (out / "contributions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["term"] for r in rows if r["module"] == "cross/layer0"} == {
        "E1", "E3", "E4", "cov E1,E3", "cov E1,E4", "cov E3,E4", "covariance", "all", "uniform"}
    parts = [float(r["share"]) for r in rows if r["module"] == "cross/layer0" and r["term"][0] in "Ec"
             and r["term"] != "covariance"]  # the terms and every pair
    assert sum(parts) == pytest.approx(1.0)
    with (out / "ablation.csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(result["ablation"])
    md = (out / "analysis.md").read_text()
    assert "## Term contributions" in md and "## Test-time removal" in md
    assert (out / "summary.txt").read_text().splitlines() == result["summary"]
    for role in ("encoder", "decoder", "cross"):
        assert (out / f"terms_{role}.png").read_bytes()[:4] == b"\x89PNG"
    heatmaps = sorted(p.name for p in (out / "heatmaps").iterdir())
    assert heatmaps == ["cross_layer0_sent0.png", "decoder_layer0_sent0.png", "encoder_layer0_sent0.png"]
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert "terms/cross/layer0/sent0" in events.Tags()["images"]
    assert len(list((out / "hypotheses").glob("*.hyp"))) == len(result["ablation"])

    # a term the model holds at zero: removing it at test time changes nothing
    loaded = load_model(ckpt)
    cross_sites = [s for s in attention_sites(loaded.model) if s.role == "cross"]
    with torch.no_grad():
        cross_sites[0].module.u.zero_()
    plan = [r for r in removals(cross_sites) if r.term == "E3"]
    rows = run_ablations(loaded, FirstSentences(NMTDataModule(loaded.cfg.data), 4), "valid", plan, {"beam": 1},
                         tmp_path / "zero")
    assert rows[1]["d_bleu"] == 0.0 and rows[1]["d_chrf"] == 0.0
    assert (tmp_path / "zero" / "cross-all-E3.hyp").read_text() == (tmp_path / "zero" / "intact.hyp").read_text()


def test_analyze_has_help_and_reports_a_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["analyze", "--help"])
    assert e.value.code == 0 and "--max_sentences" in capsys.readouterr().out
    assert main(["analyze", "--checkpoint", str(tmp_path / "none.ckpt")]) == 2
    assert "none.ckpt" in capsys.readouterr().err
