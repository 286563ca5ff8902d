"""``nmt ablate --status``: a campaign's or study's runs (done, running, interrupted, left), the time
left, and the finished runs with their scores, validation curve and time."""

from __future__ import annotations

import statistics

from nmt.ablate.report import collect_records, finished_record_path
from nmt.ablate.results import RunRecord, fmt_number
from nmt.ablate.study import StudyConfig
from nmt.ablate.twins import Member, later_twins
from nmt.lock import holder, is_alive


def run_state(study: StudyConfig, label: str, seed: int) -> str:
    """done | running | interrupted (started, resumable) | todo."""
    if finished_record_path(study, label, seed) is not None:
        return "done"
    run_dir = study.run_dir(label, seed)
    if is_alive(holder(run_dir / "RUNNING")):
        return "running"
    return "interrupted" if run_dir.is_dir() else "todo"


def _progress(study: StudyConfig, label: str, seed: int) -> int | None:
    """Updates done by a started run when its last checkpoint was saved; None without one (yet)."""
    from nmt.checkpoint import CheckpointError, global_step

    last = study.run_dir(label, seed) / "checkpoints" / "last.ckpt"
    try:
        return global_step(last) if last.is_file() else None
    except (CheckpointError, OSError):
        return None


def _budget(study: StudyConfig, label: str, seed: int) -> int | None:
    """A run's fixed number of updates (``train.max_steps``), None when it has none."""
    steps = study.experiment(label, seed).train.max_steps
    return steps if steps > 0 else None


def _seconds_per_update(rec: RunRecord) -> float | None:
    """A finished run's ``run_seconds / train_steps``, None when either is missing."""
    return rec.run_seconds / rec.train_steps if rec.run_seconds and rec.train_steps else None


def _per_update(records: list[RunRecord]) -> float | None:
    """Mean seconds per update of finished runs (``_seconds_per_update``), None without any."""
    rates = [x for x in map(_seconds_per_update, records) if x is not None]
    return statistics.fmean(rates) if rates else None


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    h, m = divmod(int(round(seconds / 60)), 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"


def campaign_status(studies: list[StudyConfig], twins: list[tuple[Member, Member]] | None = None) -> str:
    """A table of each study's runs: done, running, interrupted, left, and the estimated time left.
    Time per update is what the finished runs took (``RunRecord.run_seconds``: every training process
    and testing, over their updates), the mean over the run's setting, else its study, else the whole
    campaign, times the updates the run has still to do; one stream, sequential, and, with several
    runs running now, that time shared among the streams running them. A run that has not started and
    has a twin earlier in ``studies`` (``nmt.ablate.twins``) is left but trains nothing: the twin's
    finished run is copied to it, so it adds no time. ``twins``: ``later_twins(studies)`` when already
    at hand (it builds every run's config)."""
    twins = later_twins(studies) if twins is None else twins
    copies = {(st.output_dir, label, seed) for (st, label, seed), _ in twins}
    per_study = [(st, collect_records(st)) for st in studies]
    overall = _per_update([r for _, recs in per_study for r in recs])
    lines = ["| study | done | running | interrupted | left | est. time left |", "|---|---|---|---|---|---|"]
    total_left, total_copies, total_secs, unknown, total_running = 0, 0, 0.0, False, 0
    for st, recs in per_study:
        states = {(s.label, k): run_state(st, s.label, k) for s in st.settings for k in st.seeds}
        in_study = _per_update(recs)
        per_label: dict[str, tuple[float | None, int | None]] = {}  # (s/update, updates) of a setting's runs
        secs, running, study_unknown, n_copies = 0.0, [], False, 0
        for (label, seed), state in states.items():
            if state == "done":
                continue
            if state == "todo" and (st.output_dir, label, seed) in copies:
                n_copies += 1
                continue
            updates = _progress(st, label, seed) if state in ("running", "interrupted") else None
            if state == "running":
                running.append(f"{label}/seed{seed}" + (f" at {updates:,}" if updates is not None else ""))
            if label not in per_label:  # the same for every seed: a seed sets only seeds and the run folder
                per_label[label] = (_per_update([r for r in recs if r.label == label]) or in_study or overall,
                                    _budget(st, label, seed))
            rate, budget = per_label[label]
            if rate is None or budget is None:
                study_unknown = True
            else:
                secs += rate * max(0, budget - (updates or 0))
        counts = {s: sum(v == s for v in states.values()) for s in ("done", "running", "interrupted")}
        left = len(states) - counts["done"]
        total_left += left
        total_copies += n_copies
        total_secs += secs
        total_running += counts["running"]
        unknown = unknown or study_unknown
        lines.append(f"| {st.name} ({st.output_dir}) | {counts['done']}/{len(states)} | "
                     f"{', '.join(running) or 0} | {counts['interrupted']} | "
                     f"{left}{f' ({n_copies} copied from twins)' if n_copies else ''} | "
                     f"{_fmt_duration(None if study_unknown else secs)} |")
    side_by_side = (f"; about {_fmt_duration(total_secs / total_running)} with the {total_running} runs now "
                    "running side by side" if total_running > 1 and not unknown else "")
    copied = f" ({total_copies} of them copied from a twin's training)" if total_copies else ""
    lines += ["", f"{total_left} run(s) left{copied}; estimated {_fmt_duration(None if unknown else total_secs)} "
              f"of one stream (the finished runs' time per update, resumes and testing included){side_by_side}."]
    return "\n".join(lines) + "\n"


QUARTERS = (0.25, 0.5, 0.75, 1.0)


def _val_at(rec: RunRecord, fraction: float) -> str:
    """Validation BLEU of the last validation at or before ``fraction`` of the run's updates."""
    points = [(u, b) for u, b in rec.val_curve or [] if u <= fraction * rec.train_steps]
    return f"{points[-1][1]:.2f}" if points else "–"


def finished_runs(studies: list[StudyConfig], twins: list[tuple[Member, Member]] | None = None) -> str:
    """A table of the finished runs, study by study: test BLEU and chrF, validation BLEU at a quarter,
    half, three quarters and the end of the run's updates, the best validation BLEU (at its update),
    the run's hours (``RunRecord.run_seconds``) and seconds per update (those hours over its updates,
    what the time left is estimated from). A run shared with twins (``nmt.ablate.twins``)
    is listed once, under its first study, naming the others (``twins`` as in ``campaign_status``)."""
    twins = later_twins(studies) if twins is None else twins
    later: set[tuple[str, str, int]] = set()
    shared: dict[tuple[str, str, int], list[str]] = {}
    for (st, label, seed), (first, first_label, _) in twins:
        later.add((st.output_dir, label, seed))
        shared.setdefault((first.output_dir, first_label, seed), []).append(f"{st.name}/{label}")
    lines = ["| study | setting | seed | test BLEU | chrF | validation BLEU at 1/4, 1/2, 3/4, all updates | "
             "best validation (update) | hours | s/update | also counts as |", "|---|---|---|---|---|---|---|---|---|---|"]
    for st in studies:
        for rec in sorted(collect_records(st), key=lambda r: (r.seed, r.label)):
            if (st.output_dir, rec.label, rec.seed) in later:
                continue
            best = max(rec.val_curve or [], key=lambda p: p[1], default=None)
            hours = rec.run_seconds / 3600 if rec.run_seconds else None
            lines.append(" | ".join([
                f"| {st.name}", rec.label, str(rec.seed), f"{rec.bleu:.2f}", f"{rec.chrf:.2f}",
                " / ".join(_val_at(rec, f) for f in QUARTERS),
                f"{best[1]:.2f} ({int(best[0]):,})" if best else "–",
                f"{hours:.1f}" if hours is not None else "–",
                fmt_number(_seconds_per_update(rec), 2),
                ", ".join(shared.get((st.output_dir, rec.label, rec.seed), [])) or "–"]) + " |")
    if len(lines) == 2:
        return "No run has finished yet.\n"
    return "\n".join(lines) + "\n"
