"""``nmt select``: from the default (last.ckpt, the configured alpha), a candidate (an average of the N
best checkpoints, another alpha) takes over only when it beats the current choice on validation with a
paired-bootstrap p < 0.05; the written model is the chosen one with its alpha; the test split is never
read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from sacrebleu.metrics import BLEU

from nmt.checkpoint import Checkpoint
from nmt.cli import main
from nmt.data.datamodule import NMTDataModule
from nmt.eval.score import score
from nmt.inference import load_model
from nmt.io import read_lines
from nmt.selection import select as sel
from nmt.train.average import average_checkpoints, candidates, select

# Synthetic validation set: a hypothesis is either its reference (every n-gram matches) or shares
# nothing with it, so corpus BLEU is 100 * (sentences right) / 200 and the brevity penalty is 1.
REFS = [f"w{i} a{i} b{i} c{i} d{i} e{i}" for i in range(200)]


def _right(k: int) -> sel.Decoded:
    """A decoding that gets the first ``k`` sentences right (BLEU = k / 2)."""
    hyps = [r if i < k else "x y z q r s" for i, r in enumerate(REFS)]
    bleu, chrf = score(hyps, REFS, ("bleu", "chrf"))
    return sel.Decoded(bleu.score, chrf.score, bleu.lengths.ratio, hyps, REFS)


def _fake(right_by_model: dict[str, int], right_by_alpha):
    """A stand-in for decoding: sentences right by model (the file last.ckpt or bestN.ckpt, configured
    alpha) and by alpha (for any model)."""

    def fake(path, split, overrides, max_tokens, pack):
        if "alpha" in overrides:
            return _right(right_by_alpha(overrides["alpha"]))
        return _right(right_by_model[path.stem])

    return fake


def _replay(record: dict, by: str, default: str, order: list[str]) -> str:
    """The choice that the recorded comparisons give: each key replaces the one it was compared with
    when it is better at p < 0.05."""
    current, bleu = default, record[f"bleu_by_{by}"]
    for key in order:
        if key == default:
            continue
        assert record[f"against_by_{by}"][key] == current
        if bleu[key] > bleu[current] and record[f"p_by_{by}"][key] < 0.05:
            current = key
    return current


def test_select_keeps_the_default_unless_beaten_and_writes_it(trained_tiny, tmp_path, monkeypatch, capsys):
    ckpts = trained_tiny / "checkpoints"
    read = []
    original = NMTDataModule.sources
    monkeypatch.setattr(NMTDataModule, "sources", lambda self, split: read.append(split) or original(self, split))
    out = tmp_path / "final.ckpt"
    assert main(["select", "--dir", str(ckpts), "--output", str(out), "--alphas", "0.0", "1.0", "2.0",
                 "--alpha_max", "2.0"]) == 0
    assert set(read) == {"valid"}  # chosen on validation only
    record = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    by_model = record["bleu_by_model"]
    assert list(by_model) == ["last", "best1", "best2", "best3"] and record["default_model"] == "last"
    assert record["models"]["last"] == [str(ckpts / "last.ckpt")]
    assert record["models"]["best2"] == [str(p) for p in select(str(ckpts), None, best=2)]
    assert record["default_alpha"] == 0.6 and record["p_by_model"]["last"] is None and record["p_by_alpha"]["0.6"] is None
    assert record["model"] == _replay(record, "model", "last", list(by_model))
    assert set(record["bleu_by_alpha"]) == {"0", "0.6", "1", "2"}  # the configured alpha is always a candidate
    assert f"{record['alpha']:g}" == _replay(record, "alpha", "0.6", ["1", "0", "2"])  # by distance from 0.6
    assert record["bleu"] == record["bleu_by_alpha"][f"{record['alpha']:g}"]
    assert record["bleu_by_alpha"]["0.6"] == by_model[record["model"]]
    assert all(0 < v < 2 for v in record["length_ratio_by_alpha"].values())
    final = Checkpoint.load(out)
    assert final.config["decode"]["alpha"] == record["alpha"]
    expected = average_checkpoints(record["checkpoints"])
    for k, t in expected.state_dict.items():
        assert torch.equal(final.state_dict[k], t)
    assert f"chosen: {record['model']}, alpha=" in capsys.readouterr().out
    assert main(["test", "--checkpoint", str(out), "--split", "valid", "--json"]) == 0  # uses its alpha
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["bleu"] == pytest.approx(record["bleu"])


def test_a_small_validation_gain_does_not_move_the_choice(trained_tiny, tmp_path, monkeypatch):
    # best1 and alpha 1.5 are each one sentence (0.5 BLEU) better than the default: the maxima,
    # which the rule of 0.1.0 took, but within the validation set's noise.
    right = {"last": 100, "best1": 101, "best2": 100, "best3": 99}
    monkeypatch.setattr(sel, "_val_bleu", _fake(right, lambda a: 101 if a == 1.5 else 100))
    record = sel.select_final(trained_tiny / "checkpoints", tmp_path / "f.ckpt", alphas=[0.6, 1.0, 1.5], alpha_max=1.5)
    assert record["bleu_by_model"] == pytest.approx({"last": 50.0, "best1": 50.5, "best2": 50.0, "best3": 49.5})
    assert record["p_by_model"]["best1"] > 0.05 and record["p_by_alpha"]["1.5"] > 0.05
    assert record["model"] == "last" and record["alpha"] == 0.6 and record["bleu"] == pytest.approx(50.0)
    assert record["checkpoints"] == [str(trained_tiny / "checkpoints" / "last.ckpt")]
    final = Checkpoint.load(tmp_path / "f.ckpt")
    assert final.config["decode"]["alpha"] == 0.6
    for k, t in Checkpoint.load(trained_tiny / "checkpoints" / "last.ckpt").state_dict.items():
        assert torch.equal(final.state_dict[k], t)


def test_a_clear_validation_gain_moves_the_choice(trained_tiny, tmp_path, monkeypatch):
    # best1 is 20 sentences better than last.ckpt, best2 30 more than best1 (p ~ 0.001 each), best3 one
    # more than best2 (chance); alpha 1.0 is 20 sentences better than 0.6, alpha 1.5 one more than 1.0
    right = {"last": 100, "best1": 120, "best2": 150, "best3": 151}
    monkeypatch.setattr(sel, "_val_bleu", _fake(right, lambda a: {1.0: 170, 1.5: 171}.get(a, 150)))
    record = sel.select_final(trained_tiny / "checkpoints", tmp_path / "f.ckpt", alphas=[0.6, 1.0, 1.5], alpha_max=1.5)
    assert record["against_by_model"] == {"last": None, "best1": "last", "best2": "best1", "best3": "best2"}
    assert record["p_by_model"]["best1"] < 0.05 and record["p_by_model"]["best2"] < 0.05 and record["p_by_model"]["best3"] > 0.05
    assert record["model"] == "best2"  # best3 is the maximum, but not significantly above best2
    assert record["against_by_alpha"] == {"0.6": None, "1": "0.6", "1.5": "1"}
    assert record["alpha"] == 1.0 and record["bleu"] == pytest.approx(85.0)
    assert record["checkpoints"] == [str(p) for p in select(str(trained_tiny / "checkpoints"), None, best=2)]
    assert Checkpoint.load(tmp_path / "f.ckpt").config["decode"]["alpha"] == 1.0


def test_without_last_ckpt_the_default_is_the_newest_kept_checkpoint(trained_tiny, tmp_path, monkeypatch):
    d = tmp_path / "checkpoints"
    shutil.copytree(trained_tiny / "checkpoints", d, ignore=shutil.ignore_patterns("last*"))
    models, default = sel._models(d, None)
    newest = max(candidates(str(d)), key=lambda pc: pc[1].global_step)[0]
    assert default == "last" and models["last"] == [newest] and list(models) == ["last", "best1", "best2", "best3"]


def test_a_best_alpha_at_the_grids_edge_extends_the_grid(trained_tiny, tmp_path, monkeypatch):
    # rises steeply up to alpha 2.5 (every right sentence), then falls
    right = {"last": 100, "best1": 100, "best2": 100, "best3": 100}
    monkeypatch.setattr(sel, "_val_bleu", _fake(right, lambda a: round(200 - 40 * (a - 2.5) ** 2)))
    ckpts = trained_tiny / "checkpoints"
    record = sel.select_final(ckpts, tmp_path / "f.ckpt", alphas=[0.6, 1.0, 1.5])
    assert record["alphas_beyond_grid"] == [2.0, 2.5, 3.0] and record["alpha"] == 2.5 and record["model"] == "last"
    assert set(record["bleu_by_alpha"]) == {"0.6", "1", "1.5", "2", "2.5", "3"}
    capped = sel.select_final(ckpts, tmp_path / "g.ckpt", alphas=[0.6, 1.0, 1.5], alpha_max=2.0)
    assert capped["alphas_beyond_grid"] == [2.0] and capped["alpha"] == 2.0
    inside = sel.select_final(ckpts, tmp_path / "h.ckpt", alphas=[2.0, 2.5, 3.5])
    assert inside["alphas_beyond_grid"] == [] and inside["alpha"] == 2.5


def test_choose_moves_only_on_significant_gains_over_the_current_choice():
    runs = {"default": _right(100), "tiny": _right(102), "clear": _right(130), "tiny2": _right(131), "clear2": _right(160)}
    choice, tests = sel.choose(runs, "default", ["tiny", "clear", "tiny2", "clear2"])
    assert [tests[k][0] for k in ("tiny", "clear", "tiny2", "clear2")] == ["default", "default", "clear", "clear"]
    assert tests["tiny"][1] > 0.05 and tests["clear"][1] < 0.05 and tests["tiny2"][1] > 0.05 and tests["clear2"][1] < 0.05
    assert choice == "clear2"
    assert sel.choose(runs, "default", ["tiny2", "clear"])[0] == "tiny2"  # clear (130) is below tiny2 (131)
    assert sel.choose({"default": _right(100), "worse": _right(60)}, "default", ["worse"])[0] == "default"
    assert sel.choose({"default": _right(100)}, "default", ["default"]) == ("default", {})


def test_ties_go_to_the_preferred_key():
    assert sel._best({3: 5.0, 1: 5.0, 2: 4.0}, [1, 2, 3]) == 1
    assert sel._best({0.6: 5.0, 0.0: 5.0, 1.0: 5.0}, [0.6, 0.0, 1.0]) == 0.6


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint directory not found"):
        sel.select_final(tmp_path / "nope", tmp_path / "f.ckpt")
    with pytest.raises(ValueError, match="alphas"):
        sel.select_final(tmp_path, tmp_path / "f.ckpt", alphas=[-1.0])


def test_sweep_scores_like_nmt_test(trained_tiny, tmp_path, capsys):
    from nmt.selection.sweep import main as sweep_main

    last = trained_tiny / "checkpoints" / "last.ckpt"
    assert sweep_main(["--checkpoints", f"last={last}", "--splits", "valid", "--alphas", "0.6", "1.5",
                       "--output", str(tmp_path / "sw")]) == 0
    rows = json.loads((tmp_path / "sw" / "sweep.json").read_text(encoding="utf-8"))
    assert [(r["checkpoint"], r["split"], r["alpha"]) for r in rows] == [("last", "valid", 0.6), ("last", "valid", 1.5)]
    assert all(0 < r["bp"] <= 1 and r["length_ratio"] > 0 and (tmp_path / "sw" / Path(r["hypotheses"]).name).is_file()
               for r in rows)
    capsys.readouterr()
    assert main(["test", "--checkpoint", str(last), "--split", "valid", "--alpha", "1.5", "--json"]) == 0
    tested = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert tested["bleu"] == pytest.approx(rows[1]["bleu"])
    # BLEU's length statistics as sacrebleu gives them for the written hypotheses
    refs = NMTDataModule(load_model(last).cfg.data).references("valid")
    again = BLEU().corpus_score(read_lines(tested["hypotheses"]), [refs])
    assert (tested["hyp_len"], tested["ref_len"], tested["bp"]) == (again.sys_len, again.ref_len, again.bp)
    assert tested["length_ratio"] == pytest.approx(again.sys_len / again.ref_len)
    assert {k: rows[1][k] for k in ("bp", "length_ratio", "hyp_len", "ref_len")} == {
        k: tested[k] for k in ("bp", "length_ratio", "hyp_len", "ref_len")}
