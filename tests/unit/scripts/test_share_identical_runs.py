"""scripts/share_identical_runs.py: twins are found across studies and finished runs copied once."""

from __future__ import annotations

from pathlib import Path

import share_identical_runs as S
from helpers.ablate_toys import write_study

from nmt.ablate.results import RunRecord, load_record, save_json_atomic
from nmt.config import to_dict

FLOPS = {"encoder_self": 3, "decoder_self": 4, "cross": 5, "ffn": 6, "output": 7, "total": 25}


def _record(label: str, vary: str, attention_flops: int) -> dict:
    return to_dict(RunRecord(
        label=label, seed=1, spec=label, decoder_spec=None, vary=vary, absolute_positions="yes", bleu=20.0,
        chrf=40.0, bleu_signature="b", chrf_signature="c", test_sentences=30, flops=FLOPS,
        attention_flops=attention_flops, params=10, train_steps=8, train_tokens_per_s=None,
        decode_sentences_per_s=1.0, hypotheses="test.hyp", checkpoint="checkpoints/last.ckpt"))


def test_twins_are_copied_to_runs_not_started(tmp_path: Path) -> None:
    first = write_study(tmp_path)
    text = first.read_text(encoding="utf-8").replace(str(tmp_path / "out"), str(tmp_path / "out2"))
    second = tmp_path / "study2.yaml"  # same runs, another directory, varying only the encoder: each run has a twin
    second.write_text(text.replace("name: tiny", "name: tiny2").replace("vary: self", "vary: encoder_self")
                      .replace('spec: "0110"', 'spec: "0110", overrides: {model.decoder_self: "0110"}'), encoding="utf-8")
    (tmp_path / "base.yaml").write_text((tmp_path / "base.yaml").read_text(encoding="utf-8").replace(
        "model: {", 'model: {decoder_self: "1000", '), encoding="utf-8")
    assert S.main([str(first), str(second)]) == 0  # nothing finished: nothing copied
    assert not (tmp_path / "out2").exists()

    done = tmp_path / "out" / "1000" / "seed1"
    done.mkdir(parents=True)
    save_json_atomic(done / "result.json", _record("1000", "self", 7))
    started = tmp_path / "out2" / "0110-noabs" / "seed1"
    started.mkdir(parents=True)  # a twin already started is left alone
    (tmp_path / "out" / "0110-noabs" / "seed1").mkdir(parents=True)
    save_json_atomic(tmp_path / "out" / "0110-noabs" / "seed1" / "result.json", _record("0110-noabs", "self", 7))
    assert S.main([str(first), str(second), "--train.max_steps", "8"]) == 0
    copy = tmp_path / "out2" / "1000" / "seed1"
    assert (copy / "result.json").is_file() and (copy / "SHARED_FROM").read_text().strip() == str(done)
    assert list(started.iterdir()) == []
    rec = load_record(copy / "result.json")  # rewritten for the study it now belongs to
    assert (rec.label, rec.vary, rec.attention_flops) == ("1000", "encoder_self", FLOPS["encoder_self"])


def test_bad_study_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    assert S.main([str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.yaml" in err and len(err.splitlines()) == 1
