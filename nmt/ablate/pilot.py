"""What the campaign's pilot decides: the training budget (where the reference's validation curve
reaches its plateau) and the number of seeds (TOST power from the seed spread of a paired difference).

    python scripts/seed_power.py configs/ablation/repro/pilot.yaml --a 0110 --b 1111 --margin 1.0
"""

from __future__ import annotations

import statistics
from typing import Sequence

from nmt.ablate.power import seeds_for_power, tost_power
from nmt.ablate.results import RunRecord
from nmt.ablate.verdict import paired_stats, pooled_sd


def plateau_step(curve: Sequence[Sequence[float]], tolerance: float = 0.5) -> int:
    """The first validated update whose validation BLEU is within ``tolerance`` of the curve's best
    ([update, BLEU] points, any order): where the run reaches its plateau."""
    if not curve:
        raise ValueError("plateau_step: empty validation curve")
    points = sorted((int(s), float(b)) for s, b in curve)
    best = max(b for _, b in points)
    return next(s for s, b in points if b >= best - tolerance)


def pooled_paired_sd(records: Sequence[RunRecord], pairs: Sequence[tuple[str, str]]) -> tuple[float, int, int]:
    """Pooled SD of the paired differences a - b over ``pairs`` (each pair's sample variance
    weighted by its degrees of freedom): (SD, pairs used, degrees of freedom)."""
    stats = [paired_stats(records, a, b) for a, b in pairs]
    sd, df = pooled_sd(stats)
    return sd, sum(s is not None for s in stats), df


def pilot_report(records: Sequence[RunRecord], a: str, b: str, margin: float, alpha: float = 0.05,
                 power: float = 0.8, tolerance: float = 0.5) -> str:
    """Markdown: the reference ``b``'s validation curves and plateau, the paired spread of a - b and
    the seeds the campaign needs."""
    lines = [f"## Pilot: {a} vs {b}", ""]
    ref = sorted((r for r in records if r.label == b and r.val_curve), key=lambda r: r.seed)
    if ref:
        steps = sorted({int(s) for r in ref for s, _ in (r.val_curve or [])})
        lines += ["Validation BLEU of " + b + " (greedy, whole validation split):", "",
                  "| update | " + " | ".join(f"seed {r.seed}" for r in ref) + " |", "|---|" + "---|" * len(ref)]
        for s in steps:
            cells = [next((f"{v:.2f}" for st, v in (r.val_curve or []) if int(st) == s), "–") for r in ref]
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        plateaus = [plateau_step(r.val_curve or [], tolerance) for r in ref]
        lines += ["", f"Plateau (first update whose validation BLEU is within {tolerance} of the run's best): "
                  + ", ".join(f"seed {r.seed}: {p}" for r, p in zip(ref, plateaus))
                  + f"; a fixed budget would be {max(plateaus)} updates (the latest).", ""]
    else:
        lines += [f"No validation curve recorded for {b}.", ""]
    s = paired_stats(records, a, b)
    if s is None:
        return "\n".join(lines + [f"Fewer than two seeds with both {a} and {b}: no spread yet."]) + "\n"
    lines += [f"Paired differences {a} − {b} over seeds {' '.join(map(str, s.seeds))}: "
              + ", ".join(f"{d:+.2f}" for d in s.diffs)
              + f"; mean {s.mean:+.2f}, SD {s.sd:.2f} (test BLEU; {b} mean "
              f"{statistics.fmean(r.bleu for r in records if r.label == b):.2f}).", "",
              f"TOST power at margin {margin} (alpha {alpha}, true difference 0, SD {s.sd:.2f}):", "",
              "| seeds | " + " | ".join(str(n) for n in range(3, 11)) + " |", "|---|" + "---|" * 8,
              "| power | " + " | ".join(f"{tost_power(n, s.sd, margin, alpha):.2f}" for n in range(3, 11)) + " |", ""]
    if s.sd > 0:
        n = seeds_for_power(s.sd, margin, alpha, power)
        lines.append(f"Seeds needed for power >= {power}: **{n}** (never fewer than 3).")
    else:
        lines.append("The paired differences have no spread: 3 seeds (the minimum).")
    return "\n".join(lines) + "\n"
