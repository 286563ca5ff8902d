"""``nmt average`` and ``nmt select`` refuse checkpoints of different vocabularies, subword models or
models (two runs mixed) with one line naming two files, before anything is decoded or written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nmt.checkpoint import Checkpoint, CheckpointError
from nmt.cli import main
from nmt.selection import select as sel
from nmt.train.average import average_checkpoints

VOCAB = {"pad_id": 0, "unk_id": 1, "bos_id": 2, "eos_id": 3, "src_size": 24, "tgt_size": 24,
         "src_model": "spm.model", "tgt_model": "spm.model"}
MODEL = {"d_model": 4, "encoder_layers": 1}


def _save(path: Path, step: int, *, vocab: dict | None = None, subword: bytes = b"spm A", d_model: int = 4) -> Path:
    weights = {"embed.weight": torch.full((24, d_model), float(step)), "step": torch.tensor(step)}
    config = {"model": {**MODEL, "d_model": d_model}, "decode": {"alpha": 0.6}}
    Checkpoint(weights, config, vocab or VOCAB, {"src": subword}, global_step=step, val_bleu=10.0 + step).save(path)
    return path


MIXES = {
    "subword": ({"subword": b"spm B"}, "their vocabularies differ (different source and target subword models"),
    "vocabulary": ({"vocab": {**VOCAB, "tgt_size": 30}}, "their vocabularies differ (tgt_size 24 vs 30)"),
    "model": ({"d_model": 8}, "different models (model.d_model 4 vs 8; embed.weight of shape [24, 4] vs [24, 8])"),
}


@pytest.mark.parametrize("mix", MIXES)
def test_average_of_mixed_checkpoints_is_one_line_and_writes_nothing(tmp_path, capsys, mix):
    kwargs, message = MIXES[mix]
    a, b = _save(tmp_path / "a.ckpt", 1), _save(tmp_path / "b.ckpt", 2, **kwargs)
    out = tmp_path / "avg.ckpt"
    assert main(["average", "--checkpoints", str(a), str(b), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"error: cannot average {a} and {b}: {message}" in err and err.count("\n") == 1, err
    assert not out.exists()
    with pytest.raises(CheckpointError, match="cannot average"):
        average_checkpoints([a, b])


@pytest.mark.parametrize("mix", MIXES)
def test_select_over_a_folder_of_two_runs_is_refused_before_decoding(tmp_path, monkeypatch, capsys, mix):
    kwargs, message = MIXES[mix]
    d = tmp_path / "checkpoints"
    d.mkdir()
    _save(d / "step1.ckpt", 1)
    _save(d / "step2.ckpt", 2, **kwargs)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before refusing")

    monkeypatch.setattr(sel, "_val_bleu", no_decoding)
    out = tmp_path / "final.ckpt"
    assert main(["select", "--dir", str(d), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error: cannot average" in err and str(d / "step1.ckpt") in err and str(d / "step2.ckpt") in err, err
    assert message in err and err.count("\n") == 1
    assert not out.exists()
    assert main(["average", "--dir", str(d), "--last", "1", "-o", str(out)]) == 2  # the folder mixes runs
    assert message in capsys.readouterr().err


def test_checkpoints_of_one_run_average(tmp_path):
    """The control: same vocabulary, subword model and model."""
    a, b = _save(tmp_path / "a.ckpt", 1), _save(tmp_path / "b.ckpt", 3)
    avg = average_checkpoints([a, b])
    assert torch.equal(avg.state_dict["embed.weight"], torch.full((24, 4), 2.0))
