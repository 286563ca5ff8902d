"""``nmt ablate``: train and test every (setting, seed) run of a study, then write its results.

A run lives in ``<output_dir>/<label>/seed<k>/`` and goes through three stages, each leaving a
file, so that an interrupted study picks up where it stopped:

1. training: ``fit(cfg, "auto")`` (resumes from ``checkpoints/last.ckpt`` when it exists; stops at
   ``train.max_steps`` or earlier by early stopping on validation BLEU, ``train.patience``);
   ``train_done.json`` (updates, training tokens/s, seconds, validation curve) marks the end;
   ``RUNNING`` (pid, host: a lock, ``nmt.lock``) exists while a process works on the run, so that
   several ``nmt ablate`` processes on one study or campaign share its runs (each skips the runs
   another one holds);
2. testing the checkpoint the study's ``test_checkpoint`` rule picks on the validation set alone
   (``last``, ``best``, or ``best:N`` averaged) on the study split (hypotheses in ``<split>.hyp``);
3. ``result.json`` (written atomically), copied with the hypotheses into ``records_dir`` when the
   study has one (a committed folder): a run with either is finished and skipped.

After every run the study's tables and plot are rebuilt (``report.write_report``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from nmt.ablate.analysis import analysis_due, analyze_run
from nmt.ablate.measure import corpus_flops, corpus_flops_per_batch, sublayer_ms, token_lengths
from nmt.ablate.report import (
    blind_record_path,
    blind_sources,
    finished_record_path,
    record_path,
    references_path,
    result_path,
    write_report,
)
from nmt.ablate.results import NOT_RECORDED, RunRecord, load_record, save_json_atomic
from nmt.ablate.study import VARIED_FLOPS, StudyConfig, load_study
from nmt.config import ConfigError, to_dict
from nmt.experiment import ExperimentConfig
from nmt.io import atomic_write_text, lines_text, read_lines
from nmt.lock import FileLock, LockHeld
from nmt.provenance import code_version, hardware

log = logging.getLogger("nmt")


def positions_used(cfg: ExperimentConfig) -> str:
    """Whether absolute positions are added: "yes", "no", "encoder only" or "decoder only"."""
    enc, dec = cfg.model.uses_absolute_positions("encoder"), cfg.model.uses_absolute_positions("decoder")
    return {(True, True): "yes", (False, False): "no", (True, False): "encoder only", (False, True): "decoder only"}[
        (enc, dec)]


def _open_segment(run_dir: Path) -> list[dict[str, Any]]:
    """The run's training segments (one per process that trained it: code version, hardware, start, seconds)
    with a new one opened for this process. A segment left open by a killed process is closed at
    the time of its last checkpoint."""
    path = run_dir / "segments.json"
    segments: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    last = run_dir / "checkpoints" / "last.ckpt"
    for seg in segments:
        if seg.get("seconds") is None:
            end = last.stat().st_mtime if last.is_file() else seg["started"]
            seg["seconds"], seg["closed_at_last_checkpoint"] = max(0.0, end - seg["started"]), True
    segments.append({"code": code_version(), "hardware": hardware(), "started": time.time(), "seconds": None})
    save_json_atomic(path, segments)
    return segments


def segments_summary(segments: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What a run's closed segments add to ``train_done.json``: the code versions and hardware that
    trained it (each once, in order; a segment from before the hardware was kept: "not recorded")
    and the seconds of all segments."""
    return {"code_versions": list(dict.fromkeys(seg["code"] for seg in segments)),
            "hardware": list(dict.fromkeys(seg.get("hardware", NOT_RECORDED) for seg in segments)),
            "train_seconds_total": sum(seg["seconds"] for seg in segments)}


def _train(cfg: ExperimentConfig, run_dir: Path) -> dict[str, Any]:
    """Train (or resume) one run; returns what ``train_done.json`` records."""
    from nmt.train.curve import ValidationCurve
    from nmt.train.fit import fit
    from nmt.train.throughput import ThroughputRecorder

    speed, curve = ThroughputRecorder(window=cfg.train.log_every_steps), ValidationCurve()
    segments = _open_segment(run_dir)
    t0 = time.perf_counter()
    trainer = fit(cfg, "auto", enable_progress_bar=False, extra_callbacks=[speed, curve])
    if trainer.interrupted:
        raise KeyboardInterrupt(f"training of {run_dir} was interrupted")
    segments[-1]["seconds"] = time.perf_counter() - t0
    save_json_atomic(run_dir / "segments.json", segments)
    done = {"steps": int(trainer.global_step), "train_tokens_per_s": speed.median(),
            "train_seconds": segments[-1]["seconds"], "val_curve": curve.points, **segments_summary(segments)}
    save_json_atomic(run_dir / "train_done.json", done)
    return done


def _store_references(study: StudyConfig, references: list[str]) -> None:
    """Keep the test references next to the results (the bootstrap needs them in report-only mode)."""
    path = references_path(study)
    if path.is_file():
        if read_lines(path) == references:
            return
        log.warning("%s differs from this run's references (data changed?): overwriting it", path)
    atomic_write_text(path, "".join(line + "\n" for line in references))


def select_checkpoint(study: StudyConfig, run_dir: Path) -> tuple[Path, float | None]:
    """The checkpoint to test, chosen on validation BLEU only, and its validation BLEU (None for
    ``last`` or an average): last.ckpt, the best top-k checkpoint, or the average of the N best
    (written once to ``<run>/average_best<N>.ckpt``)."""
    from nmt.checkpoint import Checkpoint
    from nmt.train.average import average_checkpoints, select

    ckpt_dir = run_dir / "checkpoints"
    n = study.best_n()
    if n == 0:
        last = ckpt_dir / "last.ckpt"
        if not last.is_file():
            raise FileNotFoundError(f"{last}: training ended without a last checkpoint")
        return last, None
    paths = select(str(ckpt_dir), None, n)  # ranked by the validation BLEU stored in each checkpoint
    if n == 1:
        return paths[0], float(Checkpoint.load(paths[0]).val_bleu)
    out = run_dir / f"average_best{n}.ckpt"
    if not out.is_file():
        average_checkpoints(paths).save(out)
    return out, None


def run_lock(run_dir: Path) -> FileLock:
    """The lock a process holds while it works on a run (the ``RUNNING`` file)."""
    return FileLock(run_dir / "RUNNING", f"run {run_dir}")


def run_one(study: StudyConfig, label: str, seed: int) -> RunRecord:
    """Train, test and measure one run, or return its record if it is already finished.
    ``LockHeld`` when another live process works on it."""
    run_dir = study.run_dir(label, seed)
    found = finished_record_path(study, label, seed)
    if found is not None:
        return load_record(found)
    cfg = study.experiment(label, seed)
    blind = blind_sources(study, label, seed)  # a missing blind set stops the run before training, not after
    t0 = time.perf_counter()
    with run_lock(run_dir):
        found = finished_record_path(study, label, seed)  # finished by another process meanwhile
        if found is not None:
            return load_record(found)
        return _train_and_test(study, label, seed, cfg, run_dir, t0, blind)


def analyze_finished(study: StudyConfig, label: str, seed: int) -> None:
    """Analyse a finished run of an ``analyze`` setting that has no report yet, under its run lock;
    left for later while another process holds the lock, and with a warning when the run directory
    is gone."""
    if not analysis_due(study, label, seed):
        return
    run_dir = study.run_dir(label, seed)
    if not run_dir.is_dir():
        log.warning("%s seed %d: not analysed, its run directory %s is gone", label, seed, run_dir)
        return
    try:
        with run_lock(run_dir):
            if analysis_due(study, label, seed):  # not done by another process meanwhile
                analyze_run(study, label, seed)
    except LockHeld as e:
        log.info("analysis of %s seed %d left for now: %s", label, seed, e)


def _train_and_test(study: StudyConfig, label: str, seed: int, cfg: ExperimentConfig, run_dir: Path,
                    t0: float, blind_sets: dict[str, Path]) -> RunRecord:
    done_path = run_dir / "train_done.json"
    if done_path.is_file():
        done = json.loads(done_path.read_text(encoding="utf-8"))
        log.info("%s seed %d: trained already (%d steps), testing", label, seed, done["steps"])
        train_seconds = float(done.get("train_seconds") or 0.0)
    else:
        log.info("train %s seed %d in %s", label, seed, run_dir)
        done = _train(cfg, run_dir)
        train_seconds = 0.0  # counted in this process's wall time

    from nmt.data.datamodule import NMTDataModule
    from nmt.inference import load_model, score_split

    t_test = time.perf_counter()
    ckpt, val_bleu = select_checkpoint(study, run_dir)
    hyp_path = run_dir / f"{study.split}.hyp"
    loaded = load_model(ckpt)
    dm = NMTDataModule(loaded.cfg.data)
    test = score_split(loaded, dm, study.split, {}, hyp_path, study.test_max_tokens)
    sources, references = dm.sources(study.split), dm.references(study.split)
    _store_references(study, references)
    blind = _translate_blind(blind_sets, label, seed, loaded, run_dir, study.test_max_tokens)
    lengths = token_lengths(loaded.vocab, sources, references)
    flops = corpus_flops(loaded.model, lengths)
    per_batch = corpus_flops_per_batch(loaded.model, lengths, study.test_max_tokens)
    setting = study.setting(label)
    record = RunRecord(
        label=label, seed=seed, spec=setting.spec, decoder_spec=setting.decoder_spec, vary=study.vary,
        absolute_positions=positions_used(cfg),
        bleu=float(test["bleu"]), chrf=float(test["chrf"]),
        bleu_signature=str(test["bleu_signature"]), chrf_signature=str(test["chrf_signature"]),
        test_sentences=int(test["sentences"]), flops=flops,
        attention_flops=study.varied_flops(flops),
        flops_per_batch=per_batch, attention_flops_per_batch=study.varied_flops(per_batch),
        params=loaded.model.num_parameters(), train_steps=int(done["steps"]),
        train_tokens_per_s=done.get("train_tokens_per_s"),
        decode_sentences_per_s=float(test["sentences_per_s"]),
        hypotheses=hyp_path.name, checkpoint=str(ckpt.relative_to(run_dir)), val_bleu=val_bleu,
        wall_seconds=train_seconds + time.perf_counter() - t0, val_curve=done.get("val_curve"),
        sublayer_ms=sublayer_ms(loaded.model, VARIED_FLOPS[study.vary]),
        blind_hypotheses={name: path.name for name, path in blind.items()} or None,
        code_versions=done.get("code_versions"), hardware=done.get("hardware"),
        train_seconds_total=done.get("train_seconds_total"),
        test_seconds=time.perf_counter() - t_test,
    )
    save_json_atomic(result_path(study, label, seed), to_dict(record))
    committed = record_path(study, label, seed)
    if committed is not None:  # hypotheses first: a record in records_dir always has its hypotheses
        atomic_write_text(committed.with_suffix(".hyp"), hyp_path.read_text(encoding="utf-8"))
        for name, path in blind.items():
            atomic_write_text(blind_record_path(study, label, seed, name), path.read_text(encoding="utf-8"))
        save_json_atomic(committed, to_dict(record))
    log.info("%s seed %d: BLEU %.2f chrF %.2f (%s)", label, seed, record.bleu, record.chrf, run_dir / "result.json")
    return record


def _translate_blind(sets: dict[str, Path], label: str, seed: int, loaded: Any, run_dir: Path,
                     max_tokens: int) -> dict[str, Path]:
    """Translate the blind ``sets`` (name -> source file, ``blind_sources``) with the tested model and
    the test's decoding settings; returns set name -> hypotheses file in the run directory
    (``blind.<name>.hyp``)."""
    from nmt.inference import decode_config, translate_lines

    out = {}
    dcfg = decode_config(loaded.cfg.decode, {})
    for name, src in sets.items():
        results = translate_lines(loaded, read_lines(src), dcfg, max_tokens)
        hyps = [loaded.vocab.decode_tgt(r[0].tokens) for r in results]
        out[name] = run_dir / f"blind.{name}.hyp"
        atomic_write_text(out[name], lines_text(hyps))
        log.info("%s seed %d: blind set %s translated (%d sentences)", label, seed, name, len(hyps))
    return out


def _load_code() -> None:
    """Read the code version and import every module a run needs now, so that a run finishing hours
    later uses the code this process started with, whatever changed on disk meanwhile."""
    import nmt.data.datamodule  # noqa: F401
    import nmt.inference  # noqa: F401
    import nmt.train.average  # noqa: F401
    import nmt.train.curve  # noqa: F401
    import nmt.train.fit  # noqa: F401
    import nmt.train.throughput  # noqa: F401

    code_version()


def run_study(
    config_path: str | None, overrides: list[tuple[str, Any]] | None = None, *,
    only: Sequence[str] | None = None, report_only: bool = False,
) -> int:
    """``nmt ablate``: run the study's unfinished runs (all, or the settings in ``only``), then
    rebuild its results. Returns the exit code: 0, or 1 when some run failed (the others go on)."""
    if config_path is None:
        raise ConfigError("nmt ablate: give --config FILE (see configs/ablation/)")
    return run_loaded(load_study(config_path, overrides), only=only, report_only=report_only, config_path=config_path)


def run_loaded(
    study: StudyConfig, *, only: Sequence[str] | None = None, report_only: bool = False, config_path: str = "",
    busy: Optional[Callable[[StudyConfig, str, int], Optional[str]]] = None,
) -> int:
    """``run_study`` on an already loaded study. A run that another process holds is skipped, and
    so is one for which ``busy(study, label, seed)`` names a reason (e.g. its twin is training)."""
    _load_code()
    labels = [s.label for s in study.settings]
    if only:
        unknown = [x for x in only if x not in labels]
        if unknown:
            raise ConfigError(f"--only: no setting {', '.join(map(repr, unknown))} in {config_path or study.name} "
                              f"(settings: {', '.join(labels)})")
        labels = [x for x in labels if x in only]
    failed: list[str] = []
    reported = False  # whether the results already include the last run done
    if not report_only:
        # seed-major order: a study cut short has every setting with its first seed(s)
        for seed in study.seeds:
            for label in labels:
                found = finished_record_path(study, label, seed)
                if found is not None:
                    log.info("skip %s seed %d: finished (%s)", label, seed, found)
                else:
                    reason = busy(study, label, seed) if busy is not None else None
                    if reason is not None:
                        log.info("skip %s seed %d for now: %s", label, seed, reason)
                        continue
                    try:
                        run_one(study, label, seed)
                    except LockHeld as e:
                        log.info("skip %s seed %d: %s", label, seed, e)
                        continue
                    except Exception:  # one failed run must not stop a two-hour study; it is reported
                        log.exception("run %s seed %d failed", label, seed)
                        failed.append(f"{label}/seed{seed}")
                    write_report(study)  # results land run by run
                    reported = True
                analyze_finished(study, label, seed)  # a finished run of an `analyze` setting, once
    if not reported:
        write_report(study)
    if failed:
        log.error("%d run(s) failed: %s", len(failed), ", ".join(failed))
        return 1
    return 0

