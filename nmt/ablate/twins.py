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
from pathlib import Path
from typing import Optional

from nmt.ablate.report import blind_record_path, finished_record_path, hypothesis_path, record_path, result_path
from nmt.ablate.results import RunRecord, load_record, save_json_atomic
from nmt.ablate.study import VARIED_FLOPS, StudyConfig
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


def retarget(rec: RunRecord, study: StudyConfig, label: str,
             sublayer_ms: Optional[dict[str, float]] = None) -> RunRecord:
    """A copy of ``rec`` for ``study``: its label, spec, what is varied, the FLOPs of the attention
    that study varies (both cost definitions; the per-part FLOPs are the same) and, where the study
    varies another attention than ``rec``'s, ``sublayer_ms``: the forward time of that study's
    sublayers (None: not measured)."""
    setting = study.setting(label)
    out = RunRecord(**{**to_dict(rec), "flops": dict(rec.flops)})
    out.label, out.spec, out.decoder_spec, out.vary = label, setting.spec, setting.decoder_spec, study.vary
    out.attention_flops = study.varied_flops(rec.flops)
    out.attention_flops_per_batch = None if rec.flops_per_batch is None else study.varied_flops(rec.flops_per_batch)
    if study.vary != rec.vary:
        out.sublayer_ms = sublayer_ms
    return out


def _sublayer_ms(rec: RunRecord, run_dir: Path, study: StudyConfig) -> Optional[dict[str, float]]:
    """The forward time of the sublayers ``study`` varies, on the model of the finished run ``rec``
    (in ``run_dir``); None when that model's checkpoint is not at hand."""
    if study.vary == rec.vary:
        return rec.sublayer_ms
    ckpt = run_dir / rec.checkpoint
    if not ckpt.is_file():
        return None
    from nmt.ablate.measure import sublayer_ms
    from nmt.inference import load_model

    return sublayer_ms(load_model(ckpt).model, VARIED_FLOPS[study.vary])


def _stale_copy(rec: RunRecord, src: RunRecord, study: StudyConfig) -> bool:
    """Whether ``rec`` is a copy of the run ``src`` (the same seed, test BLEU and validation curve)
    written before copies got the cost figures of their own study (the FLOPs per batch and the
    sublayer times were the source's)."""
    if (rec.seed, rec.bleu, rec.val_curve) != (src.seed, src.bleu, src.val_curve):
        return False
    per_batch = None if src.flops_per_batch is None else study.varied_flops(src.flops_per_batch)
    return rec.attention_flops_per_batch != per_batch or (
        study.vary != src.vary and rec.sublayer_ms is not None and rec.sublayer_ms == src.sublayer_ms)


def share(groups: list[list[Member]]) -> list[str]:
    """Copy each group's first finished run to its members that have neither started nor finished,
    and give copies written before copies had their own study's cost figures those figures; returns
    what was done (one line per copy or refreshed copy)."""
    done = []
    for group in groups:
        finished = [(m, p) for m in group if (p := finished_record_path(*m)) is not None]
        if not finished:
            continue
        (src_study, src_label, src_seed), src_path = finished[0]
        src_rec = load_record(src_path)
        src_dir = src_study.run_dir(src_label, src_seed)
        src_hyp = hypothesis_path(src_study, src_rec)
        for (study, label, seed), path in finished[1:]:  # copies from before they had their own cost figures
            if _stale_copy(load_record(path), src_rec, study):
                rec = to_dict(retarget(src_rec, study, label, _sublayer_ms(src_rec, src_dir, study)))
                for p in (result_path(study, label, seed), record_path(study, label, seed)):
                    if p is not None and p.is_file():
                        save_json_atomic(p, rec)
                done.append(f"{study.name}/{label}/seed{seed}: cost figures of its own study")
        for study, label, seed in group:
            dst = study.run_dir(label, seed)
            if dst.exists() or finished_record_path(study, label, seed) is not None:
                continue
            rec = to_dict(retarget(src_rec, study, label, _sublayer_ms(src_rec, src_dir, study)))
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
