"""Builds a study's results (``results.csv``, ``results.json``, ``results.md``, ``results.png``)
from the ``result.json`` files of its finished runs."""

from __future__ import annotations

import logging
from pathlib import Path

from nmt.ablate.plot import flops_label, plot_study
from nmt.ablate.results import (
    Comparison,
    RunRecord,
    SettingRow,
    compare_runs,
    comparisons_markdown,
    load_record,
    results_json,
    rows_csv,
    rows_markdown,
    save_json_atomic,
    summarise,
)
from nmt.ablate.significance import setting_p_value
from nmt.ablate.study import VARIED_FLOPS, StudyConfig
from nmt.config import to_dict
from nmt.io import atomic_write_text, read_lines

log = logging.getLogger("nmt")


def references_path(study: StudyConfig) -> Path:
    """Where the runner keeps the study's test references (for the bootstrap)."""
    return study.results_dir / f"references.{study.split}.txt"


def result_path(study: StudyConfig, label: str, seed: int) -> Path:
    """The run directory's ``result.json`` (its presence marks a finished run)."""
    return study.run_dir(label, seed) / "result.json"


def record_path(study: StudyConfig, label: str, seed: int) -> Path | None:
    """The committed copy of a run's record, ``<records_dir>/<label>/seed<k>.json`` (None without records_dir)."""
    return Path(study.records_dir) / label / f"seed{seed}.json" if study.records_dir else None


def finished_record_path(study: StudyConfig, label: str, seed: int) -> Path | None:
    """Where a finished run's record is (run directory first, then records_dir), None if unfinished."""
    for p in (result_path(study, label, seed), record_path(study, label, seed)):
        if p is not None and p.is_file():
            return p
    return None


def hypothesis_path(study: StudyConfig, rec: RunRecord) -> Path:
    """A finished run's test hypotheses: in its run directory, else the copy in records_dir."""
    local = study.run_dir(rec.label, rec.seed) / rec.hypotheses
    committed = record_path(study, rec.label, rec.seed)
    return committed.with_suffix(".hyp") if committed is not None and not local.is_file() else local


def blind_record_path(study: StudyConfig, label: str, seed: int, name: str) -> Path | None:
    """The committed copy of a run's hypotheses of blind set ``name``: ``<label>/seed<k>.blind.<name>.hyp``."""
    committed = record_path(study, label, seed)
    return None if committed is None else committed.with_name(f"seed{seed}.blind.{name}.hyp")


def blind_sources(study: StudyConfig, label: str, seed: int) -> dict[str, Path]:
    """The source file of each of the study's blind sets for this run; FileNotFoundError names a missing one."""
    data = study.experiment(label, seed).data
    out = {}
    for name in study.blind_sets:
        path = Path(data.root) / study.blind_dir / f"{name}.{data.src_lang}"
        if not path.is_file():
            raise FileNotFoundError(f"{study.name}: blind set {name!r}: {path} not found (blind_sets, blind_dir, "
                                    "--data.root)")
        out[name] = path
    return out


def collect_records(study: StudyConfig) -> list[RunRecord]:
    """Records of the finished runs (settings x seeds of the study config), in study order."""
    records = []
    for s in study.settings:
        for seed in study.seeds:
            path = finished_record_path(study, s.label, seed)
            if path is not None:
                records.append(load_record(path))
    return records


def p_values(
    study: StudyConfig, records: list[RunRecord], pairs: list[tuple[str, str]]
) -> dict[tuple[str, str], float | None]:
    """Bootstrap p-value of setting A against setting B for each (A, B) of ``pairs`` (see ``significance``)."""
    refs_file = references_path(study)
    if study.bootstrap_samples < 1 or not pairs:
        return {}
    if not refs_file.is_file():
        log.warning("no p-values: references file %s is missing", refs_file)
        return {}
    refs = read_lines(refs_file)

    def hyps(label: str) -> dict[int, Path]:
        return {r.seed: hypothesis_path(study, r) for r in records if r.label == label}

    out: dict[tuple[str, str], float | None] = {}
    for a, b in pairs:
        system, baseline = hyps(a), hyps(b)
        if system and baseline:
            out[(a, b)] = setting_p_value(system, baseline, refs, study.bootstrap_samples)
    return out


def _notes(study: StudyConfig, records: list[RunRecord]) -> list[str]:
    done = {(r.label, r.seed) for r in records}
    missing = [f"{s.label} (seed {k})" for s in study.settings for k in study.seeds if (s.label, k) not in done]
    parts = " + ".join(VARIED_FLOPS[study.vary])
    notes = [
        f"Test split `{study.split}`, {records[0].test_sentences if records else '?'} sentences. "
        f"GFLOPs are summed over the test set with `Transformer.flops(src_len, tgt_len)` on the tokenised source "
        f"(+ `</s>`) and reference (+ 1) lengths; attention = {parts}. BLEU/chrF: sacrebleu on detokenised output; "
        f"± = sample std over seeds. Attn ms: median forward time of the first layer's varied sublayer(s) on "
        f"32 random sentences of 30 / 100 tokens, eval mode, measured on the machine of the run. "
        f"Train tok/s: median over windows of `train.log_every_steps` updates (validation excluded). "
        f"p: paired cluster bootstrap ({study.bootstrap_samples} resamples of the test sentences, each with "
        f"all seeds' hypotheses) of the seed-mean BLEU against **{study.reference}**, over the common seeds.",
    ]
    if records:
        notes += ["", f"BLEU signature: `{records[0].bleu_signature}`"]
    if missing:
        notes += ["", f"Not finished: {', '.join(missing)}."]
    return notes


def write_report(study: StudyConfig) -> list[SettingRow]:
    """Rebuild every results file of the study from the runs finished so far; returns the rows."""
    records = collect_records(study)
    order = [s.label for s in study.settings]
    against_ref = [(label, study.reference) for label in order if label != study.reference]
    extra = [(a, b) for a, b in study.compare]
    p = p_values(study, records, against_ref + extra)
    rows = summarise(records, order, study.reference, {a: p.get((a, b)) for a, b in against_ref})
    comparisons: list[Comparison] = [
        c for a, b in extra if (c := compare_runs(records, a, b, p.get((a, b)))) is not None]
    out = study.results_dir
    title = f"{study.name}: {study.vary} attention varied"
    atomic_write_text(out / "results.csv", rows_csv(rows))
    save_json_atomic(out / "results.json", results_json(to_dict(study), rows, records, comparisons))
    notes = _notes(study, records)
    atomic_write_text(out / "results.md", rows_markdown(rows, title, comparisons_markdown(comparisons) + notes))
    plot_study(rows, out / "results.png", title, flops_label(study.vary))
    log.info("study %s: %d/%d runs finished; results in %s/results.{md,csv,json,png}",
             study.name, len(records), len(study.settings) * len(study.seeds), out)
    return rows
