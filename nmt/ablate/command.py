"""``nmt ablate``: run or resume a study or a campaign, or print its status or verdicts.

A campaign runs family by family and, within a family, seed by seed across its studies
(``run_campaign``); several processes may share it (run locks, and twins that wait for each other).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any, Callable, Optional

from nmt.ablate.campaign import (
    Campaign,
    apply_seed_plan,
    decide_seed_plan,
    is_campaign_file,
    load_campaign,
    seed_plan_status,
)
from nmt.ablate.report import write_report
from nmt.ablate.status import campaign_status, finished_runs, run_state
from nmt.ablate.study import StudyConfig, load_study
from nmt.ablate.twins import Member, later_twins, share, twin_groups
from nmt.ablate.verdict_page import write_verdicts
from nmt.config import ConfigError

log = logging.getLogger("nmt")


def twin_started(groups: list[list[Member]]) -> Callable[[StudyConfig, str, int], Optional[str]]:
    """For the runner: why a not-yet-started run must wait, namely that one of its twins (``groups``,
    ``nmt.ablate.twins.twin_groups``) has started here or in another process; it is copied to this
    run when it finishes. None for a run that may go ahead."""
    twins_of: dict[tuple[str, str, int], list[Member]] = {}
    for g in groups:
        for st, label, seed in g:
            twins_of[(st.output_dir, label, seed)] = [m for m in g if m[0].output_dir != st.output_dir]

    def busy(st: StudyConfig, label: str, seed: int) -> Optional[str]:
        if run_state(st, label, seed) != "todo":
            return None  # started here: resume it
        for other, lab, sd in twins_of.get((st.output_dir, label, seed), []):
            state = run_state(other, lab, sd)
            if state in ("running", "interrupted"):
                return f"its twin {other.name}/{lab}/seed{sd} has started ({state}); it is copied when done"
        return None

    return busy


def run_campaign(campaign: Campaign) -> int:
    """Run (or resume) the campaign: family by family (the order of the file), and within a family
    seed by seed across its studies, so that a campaign cut short has whole families and, in the
    family it stopped in, every setting with its first seeds. Before each study's turn, finished
    runs are copied to their not-yet-started twins (``nmt.ablate.twins``). After every seed of a
    family: once the first seeds of all its compared settings are in, the seed rule fixes the
    family's seed count (kept beside the verdicts, ``nmt.ablate.seeds``) and the loop runs to it;
    the verdicts are written again (pending until every planned seed has finished).

    Several processes may run the same campaign side by side (e.g. two one-thread streams on two
    cores): each takes the next run that no other holds, and leaves a run alone while one of its
    twins has started, here or in another process (it is copied when that one finishes)."""
    from nmt.ablate.runner import run_loaded

    groups = twin_groups(campaign.studies())
    busy = twin_started(groups)
    failed = 0
    for name in list(campaign.families):
        t0 = time.time()
        i = 0
        while i < max(len(st.seeds) for st in campaign.families[name].values()):
            for st in campaign.families[name].values():
                if i >= len(st.seeds):
                    continue
                for line in share(groups):
                    log.info("shared %s", line)
                failed += run_loaded(replace(st, seeds=st.seeds[: i + 1]), busy=busy) != 0
            # the seed count, once the first seeds are in (or as another process has decided it)
            decided = decide_seed_plan(campaign, name)
            if decided is not None:
                log.info("campaign %s: seed rule applied to %s\n%s", campaign.config.name, name, decided)
            if decided is not None or apply_seed_plan(campaign, name):  # the added seeds' twins
                groups = twin_groups(campaign.studies())
                busy = twin_started(groups)
            write_verdicts(campaign)
            i += 1
        log.info("campaign %s: family %s done in %.0f s", campaign.config.name, name, time.time() - t0)
    for line in share(groups):  # twins of runs another process finished meanwhile
        log.info("shared %s", line)
    for st in campaign.studies():  # the results files of every study with all its seeds
        write_report(st)
    return 1 if failed else 0


def ablate_command(
    config_path: str | None, overrides: list[tuple[str, Any]] | None, *, only: list[str] | None = None,
    report_only: bool = False, status: bool = False, verdicts: bool = False,
) -> int:
    """``nmt ablate``: a study file or a campaign file; run / resume it, or print its status or verdicts."""
    from nmt.ablate.runner import run_study

    if config_path is None:
        raise ConfigError("nmt ablate: give --config FILE (a study or a campaign, see configs/ablation/)")
    if not is_campaign_file(config_path):
        if verdicts:
            raise ConfigError(f"--verdicts: {config_path} is a study; verdicts need a campaign file (with families)")
        if status:
            study = [load_study(config_path, overrides)]
            twins = later_twins(study)
            print(campaign_status(study, twins) + "\n" + finished_runs(study, twins), end="")
            return 0
        return run_study(config_path, overrides, only=only, report_only=report_only)
    if only:
        raise ConfigError("--only applies to a study file, not to a campaign")
    campaign = load_campaign(config_path, overrides)
    if status:
        studies = campaign.studies()
        plans, twins = seed_plan_status(campaign), later_twins(studies)
        print(campaign_status(studies, twins) + "\n" + (plans + "\n" if plans else "") + finished_runs(studies, twins),
              end="")
        return 0
    if verdicts:
        print(write_verdicts(campaign), end="")
        return 0
    if report_only:
        for st in campaign.studies():
            write_report(st)
        write_verdicts(campaign)
        return 0
    return run_campaign(campaign)
