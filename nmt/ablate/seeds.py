"""How many seeds a family needs, decided on its first seeds without looking at the differences.

The rule (docs/findings.md, "Seeds", fixed before the stage's runs): after the first three seeds of
every setting of a family have finished, pool the sample variance of the paired differences A - B of
all the family's claim parts over those seeds (each part weighted by its degrees of freedom). Only
this spread is computed and shown, never a mean difference: the decision is blind to the outcome.
Power is taken at the level a claim's verdict faces in the worst case, Holm's first step: alpha / k
for k claims in the family. A claim is reproduced only if all its parts are, so its power is the
product of its parts' powers: for a ``close`` part the paired TOST's power at a true difference of 0
(``tost_power``), for a directional part a one-sided t test's power at a true difference one margin
beyond its margin (``one_sided_power``: "clearly worse" taken as twice the margin; a part with
margin 0 gets the family's default margin as the distance). The seed count
is the smallest n >= ``min_seeds`` (4) at which every claim's power reaches ``power`` (0.8).

The decision is taken once per family and kept beside the verdicts as the family's *seed plan*
(``<results_dir>/<family slug>.seeds.{md,json}``); ``planned_seeds`` extends a study's seeds to it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

from nmt.ablate.power import one_sided_power, tost_power
from nmt.ablate.results import save_json_atomic
from nmt.ablate.verdict import Claim, Run, claims_in, paired_stats, pooled_sd
from nmt.io import atomic_write_text


@dataclass
class SeedDecision:
    """The blinded decision: per part its SD (no mean), the pooled SD, the level and the seed count."""

    part_sd: list[tuple[str, str, str, float | None, int]]  # claim, "A vs B", test, SD or None, seeds used
    pooled_sd: float
    df: int
    alpha: float
    claims: int  # k: power is taken at alpha / k, Holm's first step
    seeds: int
    claim_power: dict[str, float]

    @property
    def level(self) -> float:
        return self.alpha / self.claims


def claim_power(claim: Claim, n: int, sd: float, level: float, default_margin: float = 1.0) -> float:
    """Probability that every part of ``claim`` is declared with ``n`` seeds at ``level`` (see module)."""
    power = 1.0
    for part in claim.parts:
        if part.test == "close":
            power *= tost_power(n, sd, part.margin, level)
        else:
            power *= one_sided_power(n, sd, part.margin if part.margin > 0 else default_margin, level)
    return power


def decide_seeds(claims: Sequence[Claim], runs_of: dict[str, Sequence[Run]], first: Sequence[int] = (1, 2, 3),
                 alpha: float = 0.05, power: float = 0.8, min_seeds: int = 4, max_seeds: int = 30,
                 default_margin: float = 1.0) -> SeedDecision:
    """The seed count of one family from its runs of seeds ``first`` (see module). ValueError when no
    part has two of those seeds finished for both its settings."""
    in_scope = claims_in(claims, runs_of)
    if not in_scope:
        raise ValueError("no claim of the campaign is tested in this family")
    rows: list[tuple[str, str, str, float | None, int]] = []
    stats = []
    for claim in in_scope:
        for part in claim.parts:
            runs = [r for r in runs_of[part.study] if r.seed in first]
            s = paired_stats(runs, part.a, part.b, part.metric)
            rows.append((claim.id, f"{part.a} vs {part.b} ({part.study})", part.test,
                         None if s is None else s.sd, 0 if s is None else s.n))
            stats.append(s)
    try:
        sd, df = pooled_sd(stats)
    except ValueError:
        raise ValueError(f"no claim part has two of seeds {list(first)} finished for both settings") from None
    level = alpha / len(in_scope)
    if sd == 0.0:
        return SeedDecision(rows, sd, df, alpha, len(in_scope), min_seeds, {c.id: 1.0 for c in in_scope})
    for n in range(min_seeds, max_seeds + 1):
        powers = {c.id: claim_power(c, n, sd, level, default_margin) for c in in_scope}
        if min(powers.values()) >= power:
            return SeedDecision(rows, sd, df, alpha, len(in_scope), n, powers)
    raise ValueError(f"{max_seeds} seeds do not reach power {power} at the pooled SD {sd:.2f}")


def seeds_markdown(family: str, decision: SeedDecision, first: Sequence[int], power: float) -> str:
    """The decision as a table (SDs only, no means)."""
    lines = [f"## Seeds for {family}", "",
             f"Spread of the paired differences over seeds {', '.join(map(str, first))} (blinded: no means):", "",
             "| claim | pair | test | seeds | SD of A − B |", "|---|---|---|---|---|"]
    for cid, pair, test, sd, n in decision.part_sd:
        lines.append(f"| {cid} | {pair} | {test} | {n} | {'–' if sd is None else f'{sd:.2f}'} |")
    lines += ["", f"Pooled SD {decision.pooled_sd:.2f} ({decision.df} degrees of freedom); power at Holm's first "
              f"step, alpha / {decision.claims} = {decision.level:.4f}; claims' power with "
              f"{decision.seeds} seeds: " + ", ".join(f"{k}: {v:.2f}" for k, v in decision.claim_power.items()),
              "", f"Seeds for every claim's power >= {power}: **{decision.seeds}**.", ""]
    return "\n".join(lines)


def family_slug(family: str) -> str:
    """A family's name as a file name ("Multi30k en->de, relative positions" ->
    "multi30k-en-de-relative-positions")."""
    return re.sub(r"[^a-z0-9]+", "-", family.lower()).strip("-")


def plan_path(results_dir: str | Path, family: str) -> Path:
    """Where a family's seed decision is kept (``.json``; the table beside it as ``.md``)."""
    return Path(results_dir) / f"{family_slug(family)}.seeds.json"


def write_plan(results_dir: str | Path, family: str, decision: SeedDecision, first: Sequence[int], power: float) -> str:
    """Keep a family's seed decision (JSON for the campaign, Markdown for readers); returns the Markdown."""
    text = seeds_markdown(family, decision, first, power)
    path = plan_path(results_dir, family)
    atomic_write_text(path.with_suffix(".md"), text)
    save_json_atomic(path, {"family": family, "first": list(first), "power": power, **asdict(decision)})
    return text


def read_plan(results_dir: str | Path, family: str) -> Optional[int]:
    """The seed count decided for ``family``, None while it has none. ValueError naming the file when
    it cannot be read as a decision."""
    path = plan_path(results_dir, family)
    if not path.is_file():
        return None
    try:
        n = json.loads(path.read_text(encoding="utf-8"))["seeds"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a seed decision ({e})") from None
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"{path}: seeds must be an integer >= 2, got {n!r}")
    return n


def planned_seeds(seeds: Sequence[int], n: int) -> list[int]:
    """A study's seeds extended to ``n`` with the next unused integers (never shortened)."""
    out = list(seeds)
    nxt = max(out, default=0) + 1
    while len(out) < n:
        out.append(nxt)
        nxt += 1
    return out
