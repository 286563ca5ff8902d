"""Accuracy/cost front over several ablation studies that vary the same attention.

Reads the ``results.json`` of each study directory, keeps the settings whose runs share the same
base (same varied attention), and prints one Markdown table sorted by attention FLOPs with the
settings on the Pareto front (no other setting has both fewer or equal FLOPs and higher or equal
mean BLEU, one of them strictly) marked; writes the same points as a Figure-2 style PNG.

    python scripts/ablation_front.py runs/ablation/self_attention runs/ablation/deformable \\
        runs/ablation/convolution runs/ablation/salient --reference 1111 --out docs/findings/front_self.png

A label found in more than one study (the same configuration run in both) is kept once, from the
first study given. Rows of other attention kinds (``vary`` differs from the first study's) are an error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nmt.ablate.plot import flops_label, plot_study
from nmt.ablate.results import SettingRow


def load_rows(study_dirs: list[Path]) -> tuple[list[SettingRow], str]:
    """Setting rows of the studies, each label once (first study wins), and the varied kind."""
    rows: dict[str, SettingRow] = {}
    vary = None
    for d in study_dirs:
        path = d / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no results (run nmt ablate first)")
        data = json.loads(path.read_text(encoding="utf-8"))
        kind = data["study"]["vary"]
        if vary is None:
            vary = kind
        elif kind != vary:
            raise ValueError(f"{path}: varies {kind} attention, the first study varies {vary}")
        for s in data["settings"]:
            rows.setdefault(s["label"], SettingRow(**{**s, "reference": False, "p_value": None}))
    return list(rows.values()), str(vary)


def pareto(rows: list[SettingRow]) -> set[str]:
    """Labels no other row dominates (fewer-or-equal FLOPs and higher-or-equal BLEU, one strictly)."""
    front = set()
    for r in rows:
        dominated = any(
            o.attention_gflops <= r.attention_gflops and o.bleu_mean >= r.bleu_mean
            and (o.attention_gflops < r.attention_gflops or o.bleu_mean > r.bleu_mean)
            for o in rows if o is not r)
        if not dominated:
            front.add(r.label)
    return front


def markdown(rows: list[SettingRow], front: set[str]) -> str:
    lines = ["| setting | spec | abs. pos. | seeds | BLEU (mean ± sd) | attn GFLOPs | params (M) | train tok/s "
             "| decode sent/s | on the front |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r.attention_gflops, -r.bleu_mean)):
        speed = "–" if r.train_tokens_per_s is None else f"{r.train_tokens_per_s:,.0f}"
        lines.append(f"| {r.label} | `{r.spec}` | {r.absolute_positions} | {len(r.seeds)} | "
                     f"{r.bleu_mean:.2f} ± {r.bleu_std:.2f} | {r.attention_gflops:.3g} | {r.params / 1e6:.2f} | "
                     f"{speed} | {r.decode_sentences_per_s:.1f} | {'yes' if r.label in front else ''} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("studies", nargs="+", type=Path, help="study output directories (holding results.json)")
    ap.add_argument("--reference", default=None, help="label highlighted in the plot")
    ap.add_argument("--exclude", nargs="*", default=[], help="labels left out (e.g. the -noabs rows)")
    ap.add_argument("--out", type=Path, default=None, help="PNG to write")
    args = ap.parse_args(argv)
    try:
        rows, vary = load_rows(args.studies)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = [r for r in rows if r.label not in set(args.exclude)]
    for r in rows:
        r.reference = r.label == args.reference
    front = pareto(rows)
    print(markdown(rows, front), end="")
    if args.out is not None:
        plot_study(rows, args.out, f"{vary} attention: all studies", flops_label(vary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
