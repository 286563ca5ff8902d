"""The shipped reproduction campaign (configs/ablation/repro/): loads, and follows its pre-registered design."""

from __future__ import annotations

from pathlib import Path

from helpers.paths import REPO

from nmt.ablate.campaign import load_campaign
from nmt.ablate.study import load_study

REPRO = REPO / "configs" / "ablation" / "repro"


def test_campaign_follows_the_design() -> None:
    campaign = load_campaign(REPRO / "campaign.yaml")  # every study loads and every setting builds
    cfg = campaign.config
    assert (cfg.alpha, cfg.margin) == (0.05, 1.0) and [c.id for c in cfg.claims] == ["1", "2", "3", "4", "5", "6"]
    rule = cfg.seed_rule  # docs/findings.md, "Seeds": decided on seeds 1-3, at least 4, power 0.8
    assert rule is not None and (rule.first, rule.min_seeds, rule.power) == ([1, 2, 3], 4, 0.8)
    assert list(campaign.families) == [
        "Multi30k en->de, relative positions", "Multi30k de->en, relative positions",
        "Multi30k en->de, relative positions, convolutions", "Multi30k de->en, relative positions, convolutions",
        "Tatoeba en->de, relative positions", "Multi30k en->de, absolute positions everywhere"]
    kinds = {name: sorted(f) for name, f in campaign.families.items()}
    assert kinds["Multi30k en->de, relative positions"] == ["cross", "self"]  # stage 1: claims 1-3
    assert kinds["Multi30k de->en, relative positions, convolutions"] == ["conv", "deform"]
    assert kinds["Tatoeba en->de, relative positions"] == ["cross", "self"]
    stage1 = campaign.families["Multi30k en->de, relative positions"]
    assert [s.label for s in stage1["self"].settings] == ["1111", "0111", "0011", "0110"]
    assert [s.label for s in stage1["cross"].settings] == ["1111", "0111", "1000"]
    parts = {c.id: [(p.study, p.a, p.b, p.test) for p in c.parts] for c in cfg.claims}
    assert parts["1"] == [("self", "0111", "1111", "close"), ("self", "0011", "1111", "close")]
    assert parts["2"] == [("cross", "0111", "1111", "worse"), ("cross", "1000", "1111", "close")]
    assert parts["3"] == [("self", "0110", "1111", "close")]
    assert parts["5"][0][1:3] == ("0010+deform_conv", "1111+deform_conv")  # the paper's two-module form
    claim_labels = {(p.study, x) for c in cfg.claims for p in c.parts for x in (p.a, p.b)}
    for name, studies in campaign.families.items():
        relative = "absolute" not in name
        for kind, st in studies.items():
            assert len(st.seeds) >= 3 and st.test_checkpoint.startswith("best") and st.records_dir
            assert Path(st.records_dir).parts[:3] == ("docs", "findings", "repro")
            for s in st.settings:
                run = st.experiment(s.label, st.seeds[0])
                assert run.train.max_time_minutes is None and run.train.max_steps > 0
                if run.data.corpus == "multi30k":  # the fixed budget: the same for every setting
                    assert (run.train.max_steps, run.train.patience, run.train.val_every_steps) == (4000, 0, 250)
                    assert run.train.num_threads == 1 and run.train.save_top_k == 3
                assert (run.model.d_model, run.model.encoder_layers, run.model.decoder_layers) == (256, 3, 3)
                assert run.data.src_lang == ("de" if "de->en" in name else "en")
                assert run.data.corpus == ("tatoeba-deu-eng" if "Tatoeba" in name else "multi30k")
                uses = run.model.uses_absolute_positions("encoder") or run.model.uses_absolute_positions("decoder")
                if relative:  # absolute positions only where the stack would be order-blind, and marked so
                    assert uses == s.label.endswith("-abs"), (name, kind, s.label)
                    if (kind, s.label) in claim_labels:
                        assert not uses  # every claim pair sees word order through its own mechanisms
                else:
                    assert uses


def test_pilot_runs_the_reference_curve_without_early_stopping() -> None:
    pilot = load_study(REPRO / "pilot.yaml")
    assert [s.label for s in pilot.settings] == ["1111", "0110"] and len(pilot.seeds) >= 4
    run = pilot.experiment("1111", 1)
    assert run.train.patience == 0 and run.train.max_steps == 8000 and run.train.val_every_steps == 250
