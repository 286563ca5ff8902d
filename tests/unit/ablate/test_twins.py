"""nmt.ablate.twins: a run copied to a twin in a study that varies another attention carries that
study's cost figures (attention FLOPs by both definitions, the forward time of its own sublayers),
and copies written before they did are refreshed."""

from __future__ import annotations

from pathlib import Path

from helpers.ablate_toys import write_study
from helpers.checkpoints import random_checkpoint

from nmt.ablate.results import RunRecord, load_record, save_json_atomic
from nmt.ablate.study import StudyConfig, load_study
from nmt.ablate.twins import retarget, share, twin_groups
from nmt.config import to_dict

FLOPS = {"encoder_self": 3, "decoder_self": 4, "cross": 5, "ffn": 6, "output": 7, "total": 25}
PER_BATCH = {"encoder_self": 2, "decoder_self": 3, "cross": 5, "ffn": 6, "output": 7, "total": 23}
SOURCE_MS = {"30": 999.0, "100": 999.0}  # no real sublayer takes this long: a value only the source has


def _record(label: str, seed: int = 1, bleu: float = 20.0) -> RunRecord:
    return RunRecord(
        label=label, seed=seed, spec=label, decoder_spec=None, vary="self", absolute_positions="yes", bleu=bleu,
        chrf=40.0, bleu_signature="b", chrf_signature="c", test_sentences=30, flops=FLOPS,
        attention_flops=7, params=10, train_steps=8, train_tokens_per_s=None, decode_sentences_per_s=1.0,
        hypotheses="test.hyp", checkpoint="average_best3.ckpt", val_curve=[[4, 10.0], [8, 20.0]],
        sublayer_ms=SOURCE_MS, flops_per_batch=PER_BATCH, attention_flops_per_batch=5)


def _two_studies(tmp_path: Path) -> tuple[StudyConfig, StudyConfig]:
    """The toy study (varies self) and a twin of it in out2/ with records in rec2/ (varies encoder_self)."""
    first = write_study(tmp_path)
    second = tmp_path / "study2.yaml"
    second.write_text(first.read_text(encoding="utf-8").replace(str(tmp_path / "out"), str(tmp_path / "out2"))
                      .replace("name: tiny", "name: tiny2").replace("vary: self", "vary: encoder_self")
                      .replace('spec: "0110"', 'spec: "0110", overrides: {model.decoder_self: "0110"}')
                      + f"records_dir: {tmp_path / 'rec2'}\n", encoding="utf-8")
    (tmp_path / "base.yaml").write_text((tmp_path / "base.yaml").read_text(encoding="utf-8").replace(
        "model: {", 'model: {decoder_self: "1000", '), encoding="utf-8")
    return load_study(first), load_study(second)


def test_retarget_gives_the_study_its_own_cost_figures(tmp_path: Path) -> None:
    self_study, enc_study = _two_studies(tmp_path)
    rec = _record("1000")
    same = retarget(rec, self_study, "1000", {"30": 1.0, "100": 2.0})
    assert (same.attention_flops, same.attention_flops_per_batch, same.sublayer_ms) == (7, 5, SOURCE_MS)
    other = retarget(rec, enc_study, "1000", {"30": 1.0, "100": 2.0})
    assert (other.vary, other.attention_flops, other.attention_flops_per_batch) == ("encoder_self", 3, 2)
    assert other.sublayer_ms == {"30": 1.0, "100": 2.0}
    assert retarget(rec, enc_study, "1000").sublayer_ms is None  # not measured: not the source's figure
    assert rec.sublayer_ms == SOURCE_MS and rec.attention_flops_per_batch == 5  # the source is untouched


def test_a_copy_is_timed_on_the_source_model_and_a_stale_copy_is_refreshed(tmp_path: Path) -> None:
    self_study, enc_study = _two_studies(tmp_path)
    groups = twin_groups([self_study, enc_study])
    src = self_study.run_dir("1000", 1)
    src.mkdir(parents=True)
    save_json_atomic(src / "result.json", to_dict(_record("1000")))
    (src / "test.hyp").write_text("x\n", encoding="utf-8")
    random_checkpoint(self_study.experiment("1000", 1), src / "average_best3.ckpt")
    assert share(groups) == ["tiny/1000/seed1 -> tiny2/1000/seed1"]
    copy = load_record(enc_study.run_dir("1000", 1) / "result.json")
    committed = load_record(tmp_path / "rec2" / "1000" / "seed1.json")
    assert copy == committed and copy.attention_flops_per_batch == 2
    assert copy.sublayer_ms is not None and set(copy.sublayer_ms) == {"30", "100"}
    assert copy.sublayer_ms != SOURCE_MS and all(0 < ms < 999 for ms in copy.sublayer_ms.values())
    assert share(groups) == []  # nothing new, nothing stale

    stale = to_dict(_record("1000")) | {"vary": "encoder_self", "attention_flops": 3}  # as copies were written
    for path in (enc_study.run_dir("1000", 1) / "result.json", tmp_path / "rec2" / "1000" / "seed1.json"):
        save_json_atomic(path, stale)
    assert share(groups) == ["tiny2/1000/seed1: cost figures of its own study"]
    for path in (enc_study.run_dir("1000", 1) / "result.json", tmp_path / "rec2" / "1000" / "seed1.json"):
        fresh = load_record(path)
        assert fresh.attention_flops_per_batch == 2 and fresh.sublayer_ms not in (None, SOURCE_MS)
        assert (fresh.bleu, fresh.val_curve, fresh.label) == (20.0, [[4, 10.0], [8, 20.0]], "1000")
    assert share(groups) == []


def test_a_twin_trained_on_its_own_is_not_taken_for_a_copy(tmp_path: Path) -> None:
    self_study, enc_study = _two_studies(tmp_path)
    for study, bleu in ((self_study, 20.0), (enc_study, 21.0)):
        run = study.run_dir("1000", 1)
        run.mkdir(parents=True)
        own = to_dict(_record("1000", bleu=bleu)) | {"vary": study.vary}
        save_json_atomic(run / "result.json", own)
    before = (enc_study.run_dir("1000", 1) / "result.json").read_text(encoding="utf-8")
    assert share(twin_groups([self_study, enc_study])) == []
    assert (enc_study.run_dir("1000", 1) / "result.json").read_text(encoding="utf-8") == before
