"""Train a configuration once when several studies contain it: finished runs are copied to their twins.

Two runs are twins when their experiment configs are equal in every key but ``train.output_dir``
(for example "1111" self-attention with "1111" cross-attention is a setting of the self-attention
study and the reference of the cross-attention study). Training is deterministic for a fixed
config and thread count, so a twin's result would be the same. ``share`` copies a finished run to
each twin that has not started: the run directory (when it exists, with a ``SHARED_FROM`` file
naming the source) and, for a study with ``records_dir``, the record and hypotheses; each copied
record is rewritten for the study it joins. The runner then skips the twin as finished.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict

from nmt.ablate.report import blind_record_path, finished_record_path, hypothesis_path, record_path, result_path
from nmt.ablate.results import RunRecord, load_record, save_json_atomic
from nmt.ablate.study import StudyConfig
from nmt.config import to_dict
from nmt.io import atomic_write_text

Member = tuple[StudyConfig, str, int]


def twin_groups(studies: list[StudyConfig]) -> list[list[Member]]:
    """Groups of (study, label, seed) whose configs are equal apart from the output directory."""
    groups: dict[str, list[Member]] = defaultdict(list)
    for study in studies:
        for s in study.settings:
            for seed in study.seeds:
                cfg = to_dict(study.experiment(s.label, seed))
                cfg["train"].pop("output_dir")
                groups[json.dumps(cfg, sort_keys=True)].append((study, s.label, seed))
    return [g for g in groups.values() if len(g) > 1]


def later_twins(studies: list[StudyConfig]) -> list[tuple[Member, Member]]:
    """Each run that has a twin earlier in ``studies``, paired with the first run of its group: where
    results are shown once, they are shown under that first run."""
    return [(member, group[0]) for group in twin_groups(studies) for member in group[1:]]


def retarget(rec: RunRecord, study: StudyConfig, label: str) -> RunRecord:
    """A copy of ``rec`` for ``study``: its label, spec, what is varied and the FLOPs of the
    attention that study varies (the per-part FLOPs are the same)."""
    setting = study.setting(label)
    out = RunRecord(**{**to_dict(rec), "flops": dict(rec.flops)})
    out.label, out.spec, out.decoder_spec, out.vary = label, setting.spec, setting.decoder_spec, study.vary
    out.attention_flops = study.varied_flops(rec.flops)
    return out


def share(groups: list[list[Member]]) -> list[str]:
    """Copy each group's first finished run to its members that have neither started nor finished;
    returns what was done (one line per copy)."""
    done = []
    for group in groups:
        finished = [(m, p) for m in group if (p := finished_record_path(*m)) is not None]
        if not finished:
            continue
        (src_study, src_label, src_seed), src_path = finished[0]
        src_rec = load_record(src_path)
        src_dir = src_study.run_dir(src_label, src_seed)
        src_hyp = hypothesis_path(src_study, src_rec)
        for study, label, seed in group:
            dst = study.run_dir(label, seed)
            if dst.exists() or finished_record_path(study, label, seed) is not None:
                continue
            rec = to_dict(retarget(src_rec, study, label))
            if (src_dir / "result.json").is_file():
                shutil.copytree(src_dir, dst)
                save_json_atomic(result_path(study, label, seed), rec)
                (dst / "SHARED_FROM").write_text(f"{src_dir}\n", encoding="utf-8")
            committed = record_path(study, label, seed)
            if committed is not None and src_hyp.is_file():
                atomic_write_text(committed.with_suffix(".hyp"), src_hyp.read_text(encoding="utf-8"))
                for name, file in (src_rec.blind_hypotheses or {}).items():
                    local, kept = src_dir / file, blind_record_path(src_study, src_label, src_seed, name)
                    found = local if local.is_file() else kept
                    if found is not None and found.is_file():
                        atomic_write_text(blind_record_path(study, label, seed, name),
                                          found.read_text(encoding="utf-8"))
                save_json_atomic(committed, rec)
            if dst.exists() or committed is not None:
                done.append(f"{src_study.name}/{src_label}/seed{src_seed} -> {study.name}/{label}/seed{seed}")
    return done
