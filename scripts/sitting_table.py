"""The tables of docs/benchmarks.md from a sitting's raw lines (``scripts/bench_sitting.sh``).

    python scripts/sitting_table.py docs/bench/sitting-2026-11-21-s4.jsonl

Prints markdown: per measurement the median over the repeats (and the range when there are
several), the ratios against the peers with the performance issue's targets, and the mechanism
variants against "1000". Medians of ratios are not taken: each ratio is median / median.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
from pathlib import Path

ROWS = [  # (name in the sitting, toolkit, measurement)
    ("train_hf", "HF transformers", "training"),
    ("nmt_train", "ours (`1000`, post-norm)", "training"),
    ("hf_b5", "HF transformers", "beam 5"),
    ("ct2_float32_b5", "CTranslate2 float32", "beam 5"),
    ("ct2_int8_b5", "CTranslate2 int8", "beam 5"),
    ("nmt_b5", "ours (`1000`)", "beam 5"),
    ("nmt_b5_plain", "ours (`1000`, `--no_pack`: plain MKL weights)", "beam 5"),
    ("nmt_b5_int8", "ours (`1000`, `--quantize int8`)", "beam 5"),
    ("ours_ct2_float32_b5", "ours exported to CTranslate2, float32", "beam 5"),
    ("ours_ct2_int8_b5", "ours exported to CTranslate2, int8", "beam 5"),
    ("hf_b1", "HF transformers", "greedy"),
    ("ct2_float32_b1", "CTranslate2 float32", "greedy"),
    ("ct2_int8_b1", "CTranslate2 int8", "greedy"),
    ("nmt_b1", "ours (`1000`)", "greedy"),
    ("nmt_b1_int8", "ours (`1000`, `--quantize int8`)", "greedy"),
    ("ours_ct2_int8_b1", "ours exported to CTranslate2, int8", "greedy"),
]
RATIOS = [  # (label, ours, peer, key, target)
    ("training target tok/s, ours / HF", "nmt_train", "train_hf", "tgt_tok_per_s", ">= 1.0x"),
    ("beam 5 sentences/s, ours / CTranslate2 float32", "nmt_b5", "ct2_float32_b5", "sent_per_s", ">= 1.0x"),
    ("beam 5 sentences/s, ours / HF", "nmt_b5", "hf_b5", "sent_per_s", ">= 1.5x"),
    ("greedy sentences/s, ours / CTranslate2 float32", "nmt_b1", "ct2_float32_b1", "sent_per_s", ">= 0.8x"),
    ("beam 5 sentences/s, ours int8 / CTranslate2 int8", "nmt_b5_int8", "ct2_int8_b5", "sent_per_s", ">= 1.0x"),
    ("greedy sentences/s, ours int8 / CTranslate2 int8", "nmt_b1_int8", "ct2_int8_b1", "sent_per_s", ">= 1.0x"),
    ("beam 5 sentences/s, our export in CTranslate2 int8 / the peers' CTranslate2 int8", "ours_ct2_int8_b5",
     "ct2_int8_b5", "sent_per_s", "~1.0x (same engine, same size)"),
]


def load(path: Path) -> dict[str, list[dict]]:
    """Results per measurement name, in repeat order (failed runs, recorded as null, are skipped)."""
    runs: dict[str, list[dict]] = collections.defaultdict(list)
    if not path.is_file():
        raise SystemExit(f"{path}: no such file (the sitting.jsonl of scripts/bench_sitting.sh)")
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise SystemExit(f"{path}:{i}: not a JSON line ({e})") from None
        if record.get("result") is not None:
            runs[record["name"]].append(record["result"])
    return runs


def cell(runs: list[dict], key: str, fmt: str = "{:,.1f}") -> str:
    """Median (min-max when several runs) of ``key``, or empty."""
    values = [r[key] for r in runs if r.get(key) is not None]
    if not values:
        return ""
    text = fmt.format(statistics.median(values))
    return text if len(values) == 1 else f"{text} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("raw", type=Path, help="sitting.jsonl of scripts/bench_sitting.sh")
    runs = load(ap.parse_args(argv).raw)
    out = ["| toolkit | measurement | runs | target tok/s | s/step (mean) | sentences/s | peak RSS MiB | MFU |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, toolkit, what in ROWS:
        r = runs.get(name, [])
        if r:
            out.append(f"| {toolkit} | {what} | {len(r)} | {cell(r, 'tgt_tok_per_s')} "
                       f"| {cell(r, 'sec_per_step', '{:.2f}')} | {cell(r, 'sent_per_s', '{:.2f}')} "
                       f"| {cell(r, 'peak_rss_mib', '{:,.0f}')} | {cell(r, 'mfu', '{:.2f}')} |")
    if "matmul_peak" in runs:
        out.append(f"\nmatmul ceiling (GFLOP/s, median of the repeats' medians): {cell(runs['matmul_peak'], 'gflops_median')}")
    out += ["", "| | ratio | target |", "|---|---:|---|"]
    for label, ours, peer, key, target in RATIOS:
        if runs.get(ours) and runs.get(peer):
            out.append(f"| {label} | **{median(runs[ours], key) / median(runs[peer], key):.2f}x** | {target} |")
    rss = [(w, o, p) for w, o, p in (("training", "nmt_train", "train_hf"), ("beam 5", "nmt_b5", "hf_b5"),
                                    ("greedy", "nmt_b1", "hf_b1")) if runs.get(o) and runs.get(p)]
    for what, o, p in (("beam 5", "nmt_b5_int8", "ct2_int8_b5"), ("greedy", "nmt_b1_int8", "ct2_int8_b1")):
        if runs.get(o) and runs.get(p):
            out.append(f"| peak RSS MiB, {what}: ours int8 / CTranslate2 int8 | {median(runs[o], 'peak_rss_mib'):,.0f} / "
                       f"{median(runs[p], 'peak_rss_mib'):,.0f} | reported |")
    if rss:
        ratios = ", ".join(f"{median(runs[o], 'peak_rss_mib') / median(runs[p], 'peak_rss_mib'):.2f}" for _, o, p in rss)
        out.append(f"| peak RSS ours / HF: {', '.join(w for w, _, _ in rss)} | {ratios} | <= 1.0 |")
    variants = [n.split(":", 1)[1] for n in runs if n.startswith("variant_train:")]  # in the sitting's order
    if variants:
        base_step = median(runs["variant_train:1000"], "sec_per_step") if runs.get("variant_train:1000") else None
        base_b5 = median(runs["variant_b5:1000"], "sent_per_s") if runs.get("variant_b5:1000") else None
        out += ["", "| self-attention | s/step (training) | vs 1000 | target tok/s | beam 5 sentences/s | vs 1000 | params |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for spec in variants:
            t, b = runs.get(f"variant_train:{spec}", []), runs.get(f"variant_b5:{spec}", [])
            step = median(t, "sec_per_step") if t else None
            speed = median(b, "sent_per_s") if b else None
            out.append(
                f"| `{spec}` | {step:.2f} | {step / base_step:.2f}x | {median(t, 'tgt_tok_per_s'):,.1f} "
                f"| {speed:.2f} | {speed / base_b5:.2f}x | {t[0]['params']:,} |"
                if t and b and base_step and base_b5 else f"| `{spec}` | (missing) | | | | | |"
            )
    if runs.get("nmt_epoch"):
        e = runs["nmt_epoch"][0]
        out += ["", f"epoch: {e['timed_steps']} timed batches (of {e['epoch_batches']}), {e['tgt_tokens']:,} target tokens "
                f"in {e['timed_seconds']:,.0f} s = **{e['tgt_tok_per_s']:,.1f} target tok/s**, {e['src_tgt_tok_per_s']:,.1f} "
                f"src+tgt tok/s, target padding {100 * e['tgt_padding_share']:.1f} %, MFU {e['mfu']}, "
                f"peak RSS {e['peak_rss_mib']:,.0f} MiB"]
    text = "\n".join(out)
    print(text)
    return text


if __name__ == "__main__":
    main()
