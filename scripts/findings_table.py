"""Refresh the finished-runs table of a findings page from a campaign's committed records.

The table is the finished-runs part of ``nmt ablate --config CAMPAIGN --status``
(``nmt.ablate.status.finished_runs``); the page's table is the first one whose header begins with
that table's first three columns, replaced up to the first line that is not a table row (so an older
table with other columns is replaced too). Nothing else on the page changes.

    python scripts/findings_table.py configs/ablation/repro/campaign.yaml docs/findings.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nmt.ablate.campaign import load_campaign
from nmt.ablate.status import finished_runs
from nmt.config import ConfigError
from nmt.io import atomic_write_text


def replace_table(page: str, table: str, where: str = "page") -> str:
    """``page`` with its first table whose header begins as ``table``'s does replaced by ``table``."""
    key = "|".join(table.splitlines()[0].split("|")[:4]) + "|"  # "| study | setting | seed |"
    lines = page.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith(key)), None)
    if start is None:
        raise ConfigError(f"{where}: no table whose header begins {key!r} to replace")
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join(lines[:start] + table.rstrip("\n").split("\n") + lines[end:])


def write_table(path: Path, table: str) -> bool:
    """Replace ``path``'s table (``replace_table``) in place; whether the page changed."""
    page = path.read_text(encoding="utf-8")
    new = replace_table(page, table, str(path))
    if new != page:
        atomic_write_text(path, new)
    return new != page


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("campaign", help="campaign YAML")
    ap.add_argument("page", type=Path, help="markdown page holding the table (rewritten in place)")
    args = ap.parse_args(argv)
    try:
        table = finished_runs(load_campaign(args.campaign).studies())
        if not table.startswith("|"):
            raise ConfigError(f"{args.campaign}: {table.strip()}")
        changed = write_table(args.page, table)
    except (ConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.page}: {len(table.splitlines()) - 2} finished runs{'' if changed else ' (unchanged)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
