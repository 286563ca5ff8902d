"""Term analysis (``nmt analyze``) of the finished runs of a study's ``analyze`` settings.

Each such run is analysed once, with its tested checkpoint on the study's split: every sentence,
term statistics and test-time removal of each term per role (no per-layer removal, no heatmaps),
while its run directory still holds the checkpoint. The report goes to ``<run>/analyze/``; with
``records_dir`` its tables, summary and figures are also committed as
``<records_dir>/<label>/seed<k>.analyze/``, which marks the analysis done.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from nmt.ablate.report import finished_record_path, record_path
from nmt.ablate.results import load_record
from nmt.ablate.study import StudyConfig

log = logging.getLogger("nmt")

REPORT_FILES = ("analysis.md", "analysis.json", "contributions.csv", "ablation.csv", "summary.txt")


def local_report(study: StudyConfig, label: str, seed: int) -> Path:
    """The run directory's report folder."""
    return study.run_dir(label, seed) / "analyze"


def committed_report(study: StudyConfig, label: str, seed: int) -> Path | None:
    """``<records_dir>/<label>/seed<k>.analyze`` (None without records_dir)."""
    committed = record_path(study, label, seed)
    return None if committed is None else committed.with_name(f"seed{seed}.analyze")


def analysis_due(study: StudyConfig, label: str, seed: int) -> bool:
    """Whether the run is of an ``analyze`` setting, finished, and without its report yet."""
    if label not in study.analyze or finished_record_path(study, label, seed) is None:
        return False
    done = committed_report(study, label, seed) or local_report(study, label, seed)
    return not (done / "analysis.json").is_file()


def analyze_run(study: StudyConfig, label: str, seed: int) -> Path | None:
    """Analyse a finished run whose analysis is due (the caller holds the run's lock); returns the
    report folder, None when the tested checkpoint is gone or the analysis failed (logged: the run's
    record stands either way)."""
    from nmt.analyze.command import analyze

    found = finished_record_path(study, label, seed)
    if found is None:
        return None
    ckpt = study.run_dir(label, seed) / load_record(found).checkpoint
    if not ckpt.is_file():
        log.warning("%s seed %d: not analysed, its tested checkpoint %s is gone", label, seed, ckpt)
        return None
    local = local_report(study, label, seed)
    log.info("analyse %s seed %d (%s)", label, seed, ckpt)
    try:
        analyze(ckpt, study.split, local, max_sentences=0, heatmap_sentences=0, per_layer=False,
                max_tokens=study.test_max_tokens)
    except (ValueError, RuntimeError, OSError) as e:
        log.error("%s seed %d: the analysis failed (%s: %s); the run's record stands", label, seed,
                  type(e).__name__, e)
        return None
    committed = committed_report(study, label, seed)
    if committed is None:
        return local
    _commit(local, committed)
    return committed


def _commit(local: Path, committed: Path) -> None:
    """Copy the report's tables, summary and figures into ``committed`` as a whole (a folder renamed
    into place, so a half-copied report never counts as done)."""
    files = [local / name for name in REPORT_FILES] + sorted(local.glob("terms_*.png"))
    committed.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=committed.parent, prefix=f".{committed.name}.") as tmp:
        staged = Path(tmp) / committed.name
        staged.mkdir()
        for f in files:
            if f.is_file():
                shutil.copy2(f, staged / f.name)
        if committed.exists():
            shutil.rmtree(committed)
        staged.rename(committed)
