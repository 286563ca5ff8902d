"""``nmt ablate``: train and test every (setting, seed) run of a study, then write its results.

A run lives in ``<output_dir>/<label>/seed<k>/`` and goes through three stages, each leaving a
file, so that an interrupted study picks up where it stopped:

1. training: ``fit(cfg, "auto")`` (resumes from ``checkpoints/last.ckpt`` when it exists);
   ``train_done.json`` marks the end;
2. testing ``checkpoints/last.ckpt`` on the study split (hypotheses in ``<split>.hyp``);
3. ``result.json`` (written atomically): a run with it is finished and skipped.

After every run the study's tables and plot are rebuilt (``report.write_report``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

from nmt.ablate.measure import corpus_flops, train_tokens_per_s
from nmt.ablate.report import references_path, write_report
from nmt.ablate.results import RunRecord, load_record, save_json_atomic
from nmt.ablate.study import StudyConfig, load_study
from nmt.config import ConfigError, to_dict
from nmt.experiment import ExperimentConfig
from nmt.io import atomic_write_text, read_lines

log = logging.getLogger("nmt")


def positions_used(cfg: ExperimentConfig) -> str:
    """Whether absolute positions are added: "yes", "no", "encoder only" or "decoder only"."""
    enc, dec = cfg.model.uses_absolute_positions("encoder"), cfg.model.uses_absolute_positions("decoder")
    return {(True, True): "yes", (False, False): "no", (True, False): "encoder only", (False, True): "decoder only"}[
        (enc, dec)]


def _train(cfg: ExperimentConfig, run_dir: Path) -> int:
    """Train (or resume) one run; returns the number of optimizer updates."""
    from nmt.train.fit import fit

    trainer = fit(cfg, "auto", enable_progress_bar=False)
    if trainer.interrupted:
        raise KeyboardInterrupt(f"training of {run_dir} was interrupted")
    save_json_atomic(run_dir / "train_done.json", {"steps": int(trainer.global_step)})
    return int(trainer.global_step)


def _store_references(study: StudyConfig, references: list[str]) -> None:
    """Keep the test references next to the results (the bootstrap needs them in report-only mode)."""
    path = references_path(study)
    if path.is_file():
        if read_lines(path) == references:
            return
        log.warning("%s differs from this run's references (data changed?): overwriting it", path)
    atomic_write_text(path, "".join(line + "\n" for line in references))


def result_path(study: StudyConfig, label: str, seed: int) -> Path:
    """The file whose presence marks a finished run."""
    return study.run_dir(label, seed) / "result.json"


def run_one(study: StudyConfig, label: str, seed: int) -> RunRecord:
    """Train, test and measure one run, or return its record if it is already finished."""
    run_dir = study.run_dir(label, seed)
    if result_path(study, label, seed).is_file():
        return load_record(result_path(study, label, seed))
    cfg = study.experiment(label, seed)
    done = run_dir / "train_done.json"
    if done.is_file():
        steps = int(json.loads(done.read_text(encoding="utf-8"))["steps"])
        log.info("%s seed %d: trained already (%d steps), testing", label, seed, steps)
    else:
        log.info("train %s seed %d in %s", label, seed, run_dir)
        steps = _train(cfg, run_dir)

    from nmt.data.datamodule import NMTDataModule
    from nmt.inference import load_model, score_split

    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: training ended without a last checkpoint")
    hyp_path = run_dir / f"{study.split}.hyp"
    loaded = load_model(ckpt)
    dm = NMTDataModule(loaded.cfg.data)
    test = score_split(loaded, dm, study.split, {}, hyp_path, study.test_max_tokens)
    sources, references = dm.sources(study.split), dm.references(study.split)
    _store_references(study, references)
    flops = corpus_flops(loaded.model, loaded.vocab, sources, references)
    setting = study.setting(label)
    record = RunRecord(
        label=label, seed=seed, spec=setting.spec, decoder_spec=setting.decoder_spec, vary=study.vary,
        absolute_positions=positions_used(cfg),
        bleu=float(test["bleu"]), chrf=float(test["chrf"]),
        bleu_signature=str(test["bleu_signature"]), chrf_signature=str(test["chrf_signature"]),
        test_sentences=int(test["sentences"]), flops=flops,
        attention_flops=study.varied_flops(flops),
        params=loaded.model.num_parameters(), train_steps=steps,
        train_tokens_per_s=train_tokens_per_s(run_dir / "tb"),
        decode_sentences_per_s=float(test["sentences_per_s"]),
        hypotheses=hyp_path.name, checkpoint=str(ckpt.relative_to(run_dir)),
    )
    save_json_atomic(result_path(study, label, seed), to_dict(record))
    log.info("%s seed %d: BLEU %.2f chrF %.2f (%s)", label, seed, record.bleu, record.chrf, run_dir / "result.json")
    return record


def run_study(
    config_path: str | None, overrides: list[tuple[str, Any]] | None = None, *,
    only: Sequence[str] | None = None, report_only: bool = False,
) -> int:
    """``nmt ablate``: run the study's unfinished runs (all, or the settings in ``only``), then
    rebuild its results. Returns the exit code: 0, or 1 when some run failed (the others go on)."""
    if config_path is None:
        raise ConfigError("nmt ablate: give --config FILE (see configs/ablation/)")
    study = load_study(config_path, overrides)
    labels = [s.label for s in study.settings]
    if only:
        unknown = [x for x in only if x not in labels]
        if unknown:
            raise ConfigError(f"--only: no setting {', '.join(map(repr, unknown))} in {config_path} "
                              f"(settings: {', '.join(labels)})")
        labels = [x for x in labels if x in only]
    failed: list[str] = []
    reported = False  # whether the results already include the last run done
    if not report_only:
        # seed-major order: a study cut short has every setting with its first seed(s)
        for seed in study.seeds:
            for label in labels:
                if result_path(study, label, seed).is_file():
                    log.info("skip %s seed %d: finished (%s)", label, seed, result_path(study, label, seed))
                    continue
                try:
                    run_one(study, label, seed)
                except Exception:  # one failed run must not stop a two-hour study; it is reported
                    log.exception("run %s seed %d failed", label, seed)
                    failed.append(f"{label}/seed{seed}")
                write_report(study)  # results land run by run
                reported = True
    if not reported:
        write_report(study)
    if failed:
        log.error("%d run(s) failed: %s", len(failed), ", ".join(failed))
        return 1
    return 0
