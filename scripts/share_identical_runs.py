"""Train a configuration once when several studies contain it: copy finished runs to their twins.

Two runs are twins when their experiment configs are equal in every key but ``train.output_dir``
(for example "1111" self-attention with "1111" cross-attention is a setting of the self-attention
study and the reference of the cross-attention study). Training is deterministic for a fixed
config and thread count, so a twin's result would be the same; this copies a finished run
directory (one with ``result.json``) to each twin that has not started (no directory yet) and writes
``SHARED_FROM`` there. ``nmt ablate`` then skips the twin as finished.

    python scripts/share_identical_runs.py configs/ablation/*.yaml --data.root ../shared/data \\
        --train.num_threads 1 --watch 30      # while the studies run: check every 30 s

Overrides (``--key value``) are the ones the studies are run with, so that configs compare equal.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import defaultdict

from nmt.ablate.report import result_path
from nmt.ablate.results import load_record, save_json_atomic
from nmt.ablate.study import StudyConfig, load_study
from nmt.config import ConfigError, parse_override_value, to_dict


def twin_groups(studies: list[StudyConfig]) -> list[list[tuple[StudyConfig, str, int]]]:
    """Groups of (study, label, seed) whose configs are equal apart from the output directory."""
    groups: dict[str, list[tuple[StudyConfig, str, int]]] = defaultdict(list)
    for study in studies:
        for s in study.settings:
            for seed in study.seeds:
                cfg = to_dict(study.experiment(s.label, seed))
                cfg["train"].pop("output_dir")
                groups[json.dumps(cfg, sort_keys=True)].append((study, s.label, seed))
    return [g for g in groups.values() if len(g) > 1]


def retarget(study: StudyConfig, label: str, seed: int) -> None:
    """Rewrite a copied ``result.json`` for its new study: label, spec, what is varied and the
    FLOPs of the attention that study varies (the per-part FLOPs are the same)."""
    path = result_path(study, label, seed)
    rec = load_record(path)
    setting = study.setting(label)
    rec.label, rec.spec, rec.decoder_spec, rec.vary = label, setting.spec, setting.decoder_spec, study.vary
    rec.attention_flops = study.varied_flops(rec.flops)
    save_json_atomic(path, to_dict(rec))


def share(groups: list[list[tuple[StudyConfig, str, int]]]) -> list[str]:
    """Copy each group's first finished run to its members that have not started; returns what was done."""
    done = []
    for group in groups:
        finished = [m for m in group if result_path(*m).is_file()]
        if not finished:
            continue
        src = finished[0][0].run_dir(finished[0][1], finished[0][2])
        for study, label, seed in group:
            dst = study.run_dir(label, seed)
            if dst.exists():
                continue
            shutil.copytree(src, dst)
            retarget(study, label, seed)
            (dst / "SHARED_FROM").write_text(f"{src}\n", encoding="utf-8")
            done.append(f"{src} -> {dst}")
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("studies", nargs="+", help="study YAML files")
    ap.add_argument("--watch", type=float, default=0, help="repeat every N seconds until interrupted (0: once)")
    args, rest = ap.parse_known_args(argv)
    if len(rest) % 2 or any(not k.startswith("--") for k in rest[::2]):
        ap.error(f"overrides must be --key value pairs, got {' '.join(rest)}")
    overrides = [(k[2:], parse_override_value(v)) for k, v in zip(rest[::2], rest[1::2])]
    try:
        groups = twin_groups([load_study(p, overrides) for p in args.studies])
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for g in groups:
        print("twins:", ", ".join(f"{s.name}/{label}/seed{seed}" for s, label, seed in g), file=sys.stderr)
    while True:
        for line in share(groups):
            print(time.strftime("%H:%M:%S"), "copied", line, flush=True)
        if args.watch <= 0:
            return 0
        time.sleep(args.watch)


if __name__ == "__main__":
    raise SystemExit(main())
