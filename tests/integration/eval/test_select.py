"""``nmt select``: N and alpha are the validation-BLEU maxima, the written model carries the chosen
alpha and is the average of the N best checkpoints; the test split is never read."""

from __future__ import annotations

import json

import pytest
import torch

from nmt.checkpoint import Checkpoint
from nmt.cli import main
from nmt.data.datamodule import NMTDataModule
from nmt.eval import select as sel
from nmt.train.average import average_checkpoints, select


def test_select_takes_the_validation_maxima_and_writes_them(trained_tiny, tmp_path, monkeypatch, capsys):
    ckpts = trained_tiny / "checkpoints"
    read = []
    original = NMTDataModule.sources
    monkeypatch.setattr(NMTDataModule, "sources", lambda self, split: read.append(split) or original(self, split))
    out = tmp_path / "final.ckpt"
    assert main(["select", "--dir", str(ckpts), "--output", str(out), "--alphas", "0.0", "1.0", "2.0",
                 "--alpha_max", "2.0"]) == 0
    assert set(read) == {"valid"}  # chosen on validation only
    record = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    by_n = {int(k): v for k, v in record["bleu_by_n"].items()}
    assert sorted(by_n) == [1, 2, 3]
    assert record["n"] == min(n for n, v in by_n.items() if v == max(by_n.values()))
    assert set(record["bleu_by_alpha"]) == {"0", "0.6", "1", "2"}  # the configured alpha is always a candidate
    assert record["bleu"] == max(record["bleu_by_alpha"].values()) == record["bleu_by_alpha"][f"{record['alpha']:g}"]
    assert record["bleu_by_alpha"]["0.6"] == by_n[record["n"]]
    final = Checkpoint.load(out)
    assert final.config["decode"]["alpha"] == record["alpha"]
    expected = average_checkpoints(select(str(ckpts), None, best=record["n"]))
    for k, t in expected.state_dict.items():
        assert torch.equal(final.state_dict[k], t)
    assert record["checkpoints"] == [str(p) for p in select(str(ckpts), None, best=record["n"])]
    assert f"chosen: N={record['n']}" in capsys.readouterr().out
    assert main(["test", "--checkpoint", str(out), "--split", "valid", "--json"]) == 0  # uses its alpha
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["bleu"] == pytest.approx(record["bleu"])


def test_a_best_alpha_at_the_grids_edge_extends_the_grid(trained_tiny, tmp_path, monkeypatch):
    def fake_bleu(path, split, overrides, max_tokens, pack):  # rises up to alpha 2.5, then falls
        a = overrides.get("alpha", 0.6)
        return 30.0 - (a - 2.5) ** 2

    monkeypatch.setattr(sel, "_val_bleu", fake_bleu)
    ckpts = trained_tiny / "checkpoints"
    record = sel.select_final(ckpts, tmp_path / "f.ckpt", alphas=[0.6, 1.0, 1.5])
    assert record["alphas_beyond_grid"] == [2.0, 2.5, 3.0] and record["alpha"] == 2.5
    assert set(record["bleu_by_alpha"]) == {"0.6", "1", "1.5", "2", "2.5", "3"}
    capped = sel.select_final(ckpts, tmp_path / "g.ckpt", alphas=[0.6, 1.0, 1.5], alpha_max=2.0)
    assert capped["alphas_beyond_grid"] == [2.0] and capped["alpha"] == 2.0
    inside = sel.select_final(ckpts, tmp_path / "h.ckpt", alphas=[2.0, 2.5, 3.5])
    assert inside["alphas_beyond_grid"] == [] and inside["alpha"] == 2.5


def test_ties_go_to_the_preferred_key():
    assert sel._best({3: 5.0, 1: 5.0, 2: 4.0}, [1, 2, 3]) == 1
    assert sel._best({0.6: 5.0, 0.0: 5.0, 1.0: 5.0}, [0.6, 0.0, 1.0]) == 0.6


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint directory not found"):
        sel.select_final(tmp_path / "nope", tmp_path / "f.ckpt")
    with pytest.raises(ValueError, match="alphas"):
        sel.select_final(tmp_path, tmp_path / "f.ckpt", alphas=[-1.0])
