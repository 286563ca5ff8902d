"""The campaign pilot's decisions from its finished runs: the training budget from the reference
setting's validation curve, and the number of seeds from the TOST power analysis
(``nmt.ablate.pilot``). Prints Markdown.

    python scripts/seed_power.py configs/ablation/repro/pilot.yaml --a 0110 --b 1111 --margin 1.0

``--pooled results.json ...`` instead pools the paired spread of every compared pair (and every
setting against the reference) of finished studies' ``results.json`` files.

``--campaign FILE --family NAME`` applies the campaign's seed rule (its ``seed_rule``,
``nmt.ablate.seeds``) to a family's first seeds: the pooled spread of its claim parts' paired
differences, blind to their means, and the seed count it implies; with ``--write`` the decision is
kept as ``<results_dir>/<family slug>.seeds.{md,json}``, which the campaign then runs to (it does
this itself when a family's first seeds are in).

    python scripts/seed_power.py --campaign configs/ablation/repro/campaign.yaml \
        --family "Multi30k en->de, relative positions" --write
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nmt.ablate.pilot import pilot_report, pooled_paired_sd
from nmt.ablate.power import seeds_for_power, tost_power
from nmt.ablate.report import collect_records
from nmt.ablate.results import RunRecord
from nmt.ablate.study import load_study
from nmt.config import ConfigError, from_dict


def pooled(paths: list[Path], margin: float, alpha: float, power: float) -> str:
    """Markdown: the pooled paired SD of the studies' pairs and the TOST power it implies."""
    lines = ["| study | pairs with 2+ seeds | pooled SD of A - B |", "|---|---|---|"]
    num, df_all = 0.0, 0
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        fields = set(RunRecord.__dataclass_fields__)
        records = [from_dict(RunRecord, {k: v for k, v in r.items() if k in fields}) for r in data["runs"]]
        ref = data["study"]["reference"]
        pairs = [(s["label"], ref) for s in data["settings"] if s["label"] != ref] + [tuple(c) for c in data["study"]["compare"]]
        sd, used, df = pooled_paired_sd(records, pairs)
        num, df_all = num + df * sd ** 2, df_all + df
        lines.append(f"| {data['study']['name']} | {used} | {sd:.2f} |")
    sd = (num / df_all) ** 0.5
    lines += ["", f"Pooled over all: SD {sd:.2f} ({df_all} degrees of freedom).", "",
              "| seeds | " + " | ".join(str(n) for n in range(3, 11)) + " |", "|---|" + "---|" * 8,
              "| TOST power | " + " | ".join(f"{tost_power(n, sd, margin, alpha):.2f}" for n in range(3, 11)) + " |", "",
              f"Seeds for power >= {power} at margin {margin}: **{seeds_for_power(sd, margin, alpha, power)}**."]
    return "\n".join(lines) + "\n"


def campaign_seeds(path: str, family: str | None, write: bool) -> int:
    """Print (and with ``write`` keep) the blinded seed decision of one family of a campaign, by the
    campaign's own ``seed_rule`` (the campaign applies it itself when the first seeds are in)."""
    from nmt.ablate.campaign import load_campaign, seed_decision
    from nmt.ablate.seeds import seeds_markdown, write_plan

    try:
        campaign = load_campaign(path)
        campaign.family(family)  # ConfigError when the campaign has no such family
        cfg = campaign.config
        rule = cfg.rule
        decision = seed_decision(campaign, family)
        assert decision is not None  # only a whole=True decision can be None
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if write:
        print(write_plan(cfg.results_dir, family, decision, rule.first, rule.power), end="")
    else:
        print(seeds_markdown(family, decision, rule.first, rule.power), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", nargs="?", help="the pilot study YAML")
    ap.add_argument("--a", help="setting A of the paired difference")
    ap.add_argument("--b", help="setting B (the reference whose curve is shown)")
    ap.add_argument("--pooled", nargs="+", type=Path, help="results.json files to pool instead of a pilot study")
    ap.add_argument("--margin", type=float, default=1.0, help="equivalence margin in BLEU")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--power", type=float, default=0.8, help="pilot / --pooled (a campaign has its seed_rule)")
    ap.add_argument("--campaign", help="a campaign file: apply its seed rule to --family")
    ap.add_argument("--family", help="the family (as named in the campaign file)")
    ap.add_argument("--write", action="store_true", help="--campaign: also write the decision next to the verdicts")
    args = ap.parse_args(argv)
    if args.campaign:
        return campaign_seeds(args.campaign, args.family, args.write)
    if args.pooled:
        print(pooled(args.pooled, args.margin, args.alpha, args.power), end="")
        return 0
    if not (args.study and args.a and args.b):
        ap.error("give a pilot study with --a and --b, or --pooled results.json ...")
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
