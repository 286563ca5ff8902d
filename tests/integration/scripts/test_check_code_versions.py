"""scripts/check_code_versions.py: the probe trains bit-identical models with identical code and
tells a change of rounding alone; the table names each recorded commit and whether it differs."""

from __future__ import annotations

import shutil
from pathlib import Path

import check_code_versions as ccv
from helpers.ablate_toys import toy_record, write_campaign, write_study

from nmt.ablate.report import record_path
from nmt.ablate.results import save_json_atomic
from nmt.ablate.study import load_study
from nmt.config import to_dict

REPO = Path(__file__).resolve().parents[3]
LOSS = "    lprobs = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)  # (N, V)\n"


def test_the_probe_is_repeatable_and_tells_a_rounding_change(tmp_path: Path) -> None:
    same, other = tmp_path / "same", tmp_path / "other"
    for copy in (same, other):
        shutil.copytree(REPO / "nmt", copy / "nmt", ignore=shutil.ignore_patterns("__pycache__"))
        (copy / "configs").mkdir()
        shutil.copy(REPO / ccv.BASE, copy / ccv.BASE)
    loss = other / "nmt" / "train" / "loss.py"
    text = loss.read_text(encoding="utf-8")
    assert LOSS in text
    # the same log-probabilities, rounded differently: x - logsumexp(x) instead of log_softmax(x)
    loss.write_text(text.replace(LOSS, "    lprobs = logits - torch.logsumexp(logits, dim=-1, keepdim=True)\n"),
                    encoding="utf-8")
    settings = ("self-0110",)
    first = ccv.probe_package(same, settings)
    assert list(first) == ["self-0110"] and len(first["self-0110"]) == 16
    assert ccv.probe_package(same, settings) == first
    assert ccv.probe_package(other, settings) != first


def test_the_table_names_every_recorded_commit(tmp_path: Path, monkeypatch, capsys) -> None:
    study_file = write_study(tmp_path)
    records = tmp_path / "records"
    text = study_file.read_text(encoding="utf-8").replace("seeds: [1]", "seeds: [1, 2, 3]")
    study_file.write_text(text + f"records_dir: {records}\n", encoding="utf-8")
    study = load_study(study_file)
    versions = {1: ["aaa", "bbb+dirty"], 2: ["bbb", "ccc"], 3: None}
    for seed, code in versions.items():
        save_json_atomic(record_path(study, "1000", seed), to_dict(toy_record("1000", seed, code_versions=code)))
    campaign = write_campaign(tmp_path, study_file)
    assert ccv.recorded_versions(str(campaign), "toy en->de") == {
        "aaa": ["tiny/1000/seed1"], "bbb+dirty": ["tiny/1000/seed1"], "bbb": ["tiny/1000/seed2"],
        "ccc": ["tiny/1000/seed2"], "not recorded": ["tiny/1000/seed3"]}
    dates = {"aaa": "2026-12-06 10:00", "bbb": "2026-12-06 11:00", "ccc": "2026-12-06 12:00"}
    monkeypatch.setattr(ccv, "commit_date", dates.__getitem__)
    digests = {"aaa": {"s": "1"}, "bbb": {"s": "1"}, "ccc": {"s": "2"}}
    monkeypatch.setattr(ccv, "probe_commit", lambda c: digests[c])
    assert ccv.main([str(campaign), "--family", "toy en->de"]) == 1
    out = capsys.readouterr().out
    assert "| aaa | 2026-12-06 10:00 | 1 | the same as the first |" in out
    assert "| bbb (+ uncommitted changes) | 2026-12-06 11:00 | 2 | the same as the first |" in out
    assert "| ccc | 2026-12-06 12:00 | 1 | 2 |" in out
    assert "runs without a recorded code version: tiny/1000/seed3" in out
    assert "3 commits probed: 1 train other models than the first" in out
    digests["ccc"] = {"s": "1"}
    assert ccv.main([str(campaign), "--family", "toy en->de"]) == 0
    assert "3 commits probed: all train bit-identical models" in capsys.readouterr().out
    assert ccv.main([str(campaign), "--family", "nope"]) == 2


def test_nothing_to_probe_or_an_unknown_commit_is_one_line(tmp_path: Path, capsys) -> None:
    study_file = write_study(tmp_path)
    study_file.write_text(study_file.read_text(encoding="utf-8") + f"records_dir: {tmp_path / 'records'}\n",
                          encoding="utf-8")
    campaign = write_campaign(tmp_path, study_file)
    assert ccv.main([str(campaign), "--family", "toy en->de"]) == 2  # no record yet
    assert "error: no committed record of family 'toy en->de' names a commit" in capsys.readouterr().err
    save_json_atomic(record_path(load_study(study_file), "1000", 1),
                     to_dict(toy_record("1000", 1, code_versions=["0" * 40])))
    assert ccv.main([str(campaign), "--family", "toy en->de"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: git log -1 --format=%ci {'0' * 40}: ") and len(err.strip().splitlines()) == 1
