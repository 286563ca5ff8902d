"""The campaign pilot's decisions from its finished runs: the training budget from the reference
setting's validation curve, and the number of seeds from the TOST power analysis
(``nmt.ablate.pilot``). Prints Markdown.

    python scripts/seed_power.py configs/ablation/repro/pilot.yaml --a 0110 --b 1111 --margin 1.0
"""

from __future__ import annotations

import argparse
import sys

from nmt.ablate.pilot import pilot_report
from nmt.ablate.report import collect_records
from nmt.ablate.study import load_study
from nmt.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", help="the pilot study YAML")
    ap.add_argument("--a", required=True, help="setting A of the paired difference")
    ap.add_argument("--b", required=True, help="setting B (the reference whose curve is shown)")
    ap.add_argument("--margin", type=float, default=1.0, help="equivalence margin in BLEU")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--power", type=float, default=0.8)
    args = ap.parse_args(argv)
    try:
        study = load_study(args.study)
        labels = {s.label for s in study.settings}
        for x in (args.a, args.b):
            if x not in labels:
                raise ConfigError(f"{args.study}: no setting {x!r} ({', '.join(sorted(labels))})")
        print(pilot_report(collect_records(study), args.a, args.b, args.margin, args.alpha, args.power), end="")
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
