"""Train a configuration once when several studies contain it: copy finished runs to their twins
(``nmt.ablate.twins``; a campaign run does this itself, this is for studies run side by side).

    python scripts/share_identical_runs.py configs/ablation/*.yaml --data.root ../shared/data \\
        --train.num_threads 1 --watch 30      # while the studies run: check every 30 s

Overrides (``--key value``) are the ones the studies are run with, so that configs compare equal.
"""

from __future__ import annotations

import argparse
import sys
import time

from nmt.ablate.study import load_study, parse_study_override
from nmt.ablate.twins import share, twin_groups
from nmt.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("studies", nargs="+", help="study YAML files")
    ap.add_argument("--watch", type=float, default=0, help="repeat every N seconds until interrupted (0: once)")
    args, rest = ap.parse_known_args(argv)
    if len(rest) % 2 or any(not k.startswith("--") for k in rest[::2]):
        ap.error(f"overrides must be --key value pairs, got {' '.join(rest)}")
    overrides = [(k[2:], parse_study_override(k[2:], v)) for k, v in zip(rest[::2], rest[1::2])]
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
