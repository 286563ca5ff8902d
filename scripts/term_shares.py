"""Term shares and test-time removal from one or more ``nmt analyze`` reports, as one markdown table.

Per role and term: the term's share of the logit variance in each layer and the BLEU / chrF change
when the term is switched off in every layer of the role (``contributions.csv`` and ``ablation.csv``
of each report, docs/analyze.md). With several reports (the seeds of one setting) each cell is the
mean over them, with the lowest and highest value in brackets.

    python scripts/term_shares.py docs/findings/repro/multi30k-ende/self/1111/seed*.analyze
    python scripts/term_shares.py docs/findings/repro/multi30k-ende/self/1111/seed*.analyze --page docs/findings.md

``--page`` writes the table into a markdown page instead, in place of its first table whose header
begins as this one's (``| role | term | share, layer 0 |``); nothing else on the page changes.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from findings_table import write_table

from nmt.config import ConfigError

ROLES = ("encoder", "decoder", "cross")
TERMS = ("E1", "E2", "E3", "E4", "covariance")


def read_report(folder: Path) -> tuple[dict[tuple[str, str, int], float], dict[tuple[str, str], tuple[float, float]]]:
    """``({(role, term, layer): share}, {(role, term): (ΔBLEU, ΔchrF) removed from every layer})``."""
    shares = {}
    with open(folder / "contributions.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["term"] in TERMS:
                shares[(row["role"], row["term"], int(row["layer"]))] = float(row["share"])
    removal = {}
    with open(folder / "ablation.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["layer"] == "all":
                removal[(row["role"], row["term"])] = (float(row["d_bleu"]), float(row["d_chrf"]))
    return shares, removal


def cell(values: list[float], fmt: str) -> str:
    """The mean, with the range when there is more than one value; "–" when there is none."""
    if not values:
        return "–"
    mean = fmt.format(statistics.fmean(values))
    return mean if len(values) == 1 else f"{mean} ({fmt.format(min(values))} to {fmt.format(max(values))})"


def table(folders: list[Path]) -> str:
    shares: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    removal: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for folder in folders:
        s, r = read_report(folder)
        for key, value in s.items():
            shares[key].append(value * 100)
        for key, value in r.items():
            removal[key].append(value)
    layers = sorted({layer for _, _, layer in shares})
    head = ["role", "term", *(f"share, layer {k}" for k in layers), "ΔBLEU removed", "ΔchrF removed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for role in ROLES:
        for term in TERMS:
            if not any((role, term, k) in shares for k in layers):
                continue
            pairs = removal.get((role, term), [])
            lines.append("| " + " | ".join([
                role, term, *(cell(shares.get((role, term, k), []), "{:.0f} %") for k in layers),
                cell([b for b, _ in pairs], "{:+.2f}"), cell([c for _, c in pairs], "{:+.2f}")]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reports", nargs="+", type=Path, help="nmt analyze output folders")
    ap.add_argument("--page", type=Path, help="markdown page whose term-share table is replaced (in place)")
    args = ap.parse_args(argv)
    for folder in args.reports:
        if not (folder / "contributions.csv").is_file() or not (folder / "ablation.csv").is_file():
            ap.error(f"{folder}: not an nmt analyze report (contributions.csv and ablation.csv expected)")
    if args.page is not None:
        try:
            changed = write_table(args.page, table(args.reports))
        except (ConfigError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"{args.page}: term shares of {len(args.reports)} report(s){'' if changed else ' (unchanged)'}")
        return 0
    print(f"{len(args.reports)} report(s): " + ", ".join(str(f) for f in args.reports))
    print()
    print(table(args.reports))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
