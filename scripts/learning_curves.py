"""Validation learning curves of every setting of a campaign family, in one figure.

Reads the finished runs' records (each keeps its validation curve: greedy BLEU on the whole
validation split every ``train.val_every_steps`` updates) of the family's studies and draws, per
setting, the mean curve over its seeds (thick) and each seed (thin). A setting that appears in two
studies (a twin, e.g. "1111" in self and cross) is drawn once.

    python scripts/learning_curves.py configs/ablation/repro/campaign.yaml \\
        --family "Multi30k en->de, relative positions" --out docs/findings/repro/multi30k-ende/curves.png
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from nmt.ablate.campaign import load_campaign
from nmt.ablate.report import collect_records
from nmt.config import ConfigError


def curves(campaign_file: str, family: str) -> dict[str, dict[int, list[tuple[float, float]]]]:
    """``{"<study>:<label>": {seed: [(update, val BLEU), ...]}}`` of the family's finished runs; a run
    with twins in other studies (``nmt.ablate.twins``) appears once, under its first study."""
    from nmt.ablate.twins import later_twins

    studies = load_campaign(campaign_file).family(family)
    later = {(st.output_dir, label, seed) for (st, label, seed), _ in later_twins(list(studies.values()))}
    out: dict[str, dict[int, list[tuple[float, float]]]] = {}
    for kind, study in studies.items():
        for rec in collect_records(study):
            if rec.val_curve and (study.output_dir, rec.label, rec.seed) not in later:
                out.setdefault(f"{kind}:{rec.label}", {})[rec.seed] = [(float(a), float(b)) for a, b in rec.val_curve]
    return out


def plot(data: dict[str, dict[int, list[tuple[float, float]]]], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (name, seeds) in enumerate(sorted(data.items())):
        color = f"C{i % 10}"
        for curve in seeds.values():
            ax.plot([s for s, _ in curve], [b for _, b in curve], color=color, alpha=0.25, linewidth=0.8)
        steps = sorted(set.intersection(*(set(s for s, _ in c) for c in seeds.values())))
        mean = [statistics.fmean(dict(c)[s] for c in seeds.values()) for s in steps]
        ax.plot(steps, mean, color=color, linewidth=2, label=f"{name} ({len(seeds)} seed{'' if len(seeds) == 1 else 's'})")
    ax.set_xlabel("update")
    ax.set_ylabel("validation BLEU (greedy)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if data:
        ax.legend(fontsize=8)
        lows = [b for seeds in data.values() for c in seeds.values() for s, b in c if s >= 1000]
        if lows:
            ax.set_ylim(bottom=max(0.0, min(lows) - 2))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("campaign", help="campaign YAML")
    ap.add_argument("--family", required=True, help="family name, as in the campaign file")
    ap.add_argument("--out", required=True, type=Path, help="PNG to write")
    args = ap.parse_args(argv)
    try:
        data = curves(args.campaign, args.family)
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    plot(data, args.out, args.family)
    print(f"{sum(len(s) for s in data.values())} runs of {len(data)} settings -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
