"""Result records of study runs and the study tables built from them (CSV, JSON, Markdown).

One run (setting x seed) ends with a ``result.json`` holding a ``RunRecord``. A study summary has
one ``SettingRow`` per setting with at least one finished run: means over seeds, the spread
(sample standard deviation, 0 with one seed), and the p-value against the reference setting.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional, Sequence

from nmt.ablate.verdict import paired_stats
from nmt.config import ConfigError, field, from_dict, to_dict
from nmt.io import atomic_write_text

NOT_RECORDED = "not recorded"
"""The hardware of a run, or of one process that trained it, from before records kept it."""


@dataclass
class RunRecord:
    """Everything measured on one finished run."""

    label: str = field(help="setting label")
    seed: int = field(help="training seed")
    spec: str = field(help="spec of the varied attention")
    decoder_spec: Optional[str] = field(help="decoder spec when it differs (vary=self)")
    vary: str = field(help="which attention the study varies")
    absolute_positions: str = field(help="absolute positions used: yes, no, encoder only, decoder only")
    bleu: float = field(help="test BLEU (sacrebleu, detokenised)")
    chrf: float = field(help="test chrF (sacrebleu)")
    bleu_signature: str = field(help="sacrebleu BLEU signature")
    chrf_signature: str = field(help="sacrebleu chrF signature")
    test_sentences: int = field(help="sentences in the test split")
    flops: dict[str, int] = field(help="FLOPs over the test set per part (encoder_self, ..., total); relative-"
                                  "position tables charged once per sentence (nmt.ablate.measure)")
    attention_flops: int = field(help="FLOPs over the test set of the varied attention modules (the cost)")
    params: int = field(help="trainable parameters")
    train_steps: int = field(help="optimizer updates done")
    train_tokens_per_s: Optional[float] = field(help="median training target tokens/s (ThroughputRecorder windows)")
    decode_sentences_per_s: float = field(help="test decoding speed")
    hypotheses: str = field(help="test hypotheses file, relative to the run directory")
    checkpoint: str = field(help="checkpoint tested, relative to the run directory")
    val_bleu: Optional[float] = field(None, help="validation BLEU of the tested checkpoint (None: last/averaged)")
    wall_seconds: Optional[float] = field(None, help="wall time of training (last process) plus testing")
    val_curve: Optional[list[list[float]]] = field(None, help="[update, validation BLEU] after each validation")
    sublayer_ms: Optional[dict[str, float]] = field(
        None, help="forward ms of the varied sublayers (first layer, 32 sentences) per length {'30': .., '100': ..}")
    flops_per_batch: Optional[dict[str, int]] = field(
        None, help="like flops, with the relative-position tables charged once per test batch instead")
    attention_flops_per_batch: Optional[int] = field(
        None, help="like attention_flops, with the relative-position tables charged once per test batch")
    blind_hypotheses: Optional[dict[str, str]] = field(
        None, help="blind set name -> its hypotheses file, relative to the run directory (study blind_sets)")
    code_versions: Optional[list[str]] = field(
        None, help="code version (git commit, nmt.provenance) of each process that trained the run, in order")
    hardware: Optional[list[str]] = field(
        None, help="the processor (CPU model and vector instructions, GPU) of each process that trained the run"
                   f" ('{NOT_RECORDED}' for a process from before records kept it)")
    train_seconds_total: Optional[float] = field(
        None, help="training wall time summed over every process that trained the run (resumes included)")
    test_seconds: Optional[float] = field(
        None, help="wall time of testing: checkpoint choice, test and blind-set decoding, cost measurements")

    @property
    def total_flops(self) -> int:
        return self.flops["total"]

    @property
    def run_seconds(self) -> Optional[float]:
        """Wall time the whole run took: every training process plus testing. Records from before
        ``train_seconds_total`` give ``wall_seconds`` (their last process only); records from before
        ``test_seconds`` count no testing time (about a minute on the stage-1 runs)."""
        if self.train_seconds_total is None:
            return self.wall_seconds
        return self.train_seconds_total + (self.test_seconds or 0.0)


def save_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON so that readers never see a partial file (temporary file, then rename)."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def load_record(path: str | Path) -> RunRecord:
    """Read a run's ``result.json``; errors name the file."""
    p = Path(path)
    try:
        return from_dict(RunRecord, json.loads(p.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ConfigError) as e:
        raise ConfigError(f"{p}: not a valid run result: {e}") from None


@dataclass
class SettingRow:
    """One row of the study table: a setting aggregated over its finished seeds."""

    label: str
    spec: str
    absolute_positions: str
    seeds: list[int]
    bleu_mean: float
    bleu_std: float
    chrf_mean: float
    chrf_std: float
    attention_gflops: float
    total_gflops: float
    params: int
    train_steps: float
    train_tokens_per_s: Optional[float]
    decode_sentences_per_s: float
    p_value: Optional[float]
    reference: bool
    sublayer_ms_30: Optional[float] = None
    sublayer_ms_100: Optional[float] = None


def _mean_timing(runs: Sequence[RunRecord], length: str) -> float | None:
    values = [r.sublayer_ms[length] for r in runs if r.sublayer_ms and length in r.sublayer_ms]
    return statistics.fmean(values) if values else None


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(
    records: Sequence[RunRecord], order: Sequence[str], reference: str, p_values: dict[str, float | None]
) -> list[SettingRow]:
    """One row per label of ``order`` that has records (runs of a label are averaged over seeds)."""
    rows = []
    for label in order:
        runs = sorted((r for r in records if r.label == label), key=lambda r: r.seed)
        if not runs:
            continue
        bleu, bleu_sd = _mean_std([r.bleu for r in runs])
        chrf, chrf_sd = _mean_std([r.chrf for r in runs])
        speeds = [r.train_tokens_per_s for r in runs if r.train_tokens_per_s is not None]
        spec = runs[0].spec + (f" / {runs[0].decoder_spec}" if runs[0].decoder_spec else "")
        rows.append(SettingRow(
            label=label, spec=spec, absolute_positions=runs[0].absolute_positions,
            seeds=[r.seed for r in runs], bleu_mean=bleu, bleu_std=bleu_sd, chrf_mean=chrf, chrf_std=chrf_sd,
            attention_gflops=statistics.fmean(r.attention_flops for r in runs) / 1e9,
            total_gflops=statistics.fmean(r.total_flops for r in runs) / 1e9,
            params=runs[0].params,
            train_steps=statistics.fmean(r.train_steps for r in runs),
            train_tokens_per_s=statistics.fmean(speeds) if speeds else None,
            decode_sentences_per_s=statistics.fmean(r.decode_sentences_per_s for r in runs),
            p_value=None if label == reference else p_values.get(label),
            reference=label == reference,
            sublayer_ms_30=_mean_timing(runs, "30"), sublayer_ms_100=_mean_timing(runs, "100"),
        ))
    return rows


CSV_COLUMNS = [f.name for f in fields(SettingRow)]


def rows_csv(rows: Sequence[SettingRow]) -> str:
    """The rows as CSV (one column per ``SettingRow`` field; seeds joined by spaces, empty = none)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        values = []
        for name in CSV_COLUMNS:
            v = getattr(r, name)
            values.append(" ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v))
        w.writerow(values)
    return buf.getvalue()


def fmt_number(value: float | None, digits: int) -> str:
    """A table cell: ``value`` with thousands separators and ``digits`` decimals, "–" when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _g(value: float) -> str:
    """Three significant digits, without exponent for the usual ranges (GFLOPs)."""
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def _p(value: float | None, is_reference: bool) -> str:
    if is_reference:
        return "ref"
    if value is None:
        return "–"
    return f"{value:.3f}" if value >= 0.001 else "<0.001"


def rows_markdown(rows: Sequence[SettingRow], title: str, notes: Sequence[str] = ()) -> str:
    """The study table in Markdown (reference row in bold), followed by ``notes`` lines."""
    head = ["setting", "spec", "abs. pos.", "seeds", "BLEU (mean ± sd)", "chrF", "attn GFLOPs",
            "total GFLOPs", "params (M)", "attn ms @30", "attn ms @100", "updates", "train tok/s", "decode sent/s",
            "p vs ref"]
    lines = [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            f"**{r.label}**" if r.reference else r.label,
            f"`{r.spec}`",
            r.absolute_positions,
            str(len(r.seeds)),
            f"{r.bleu_mean:.2f} ± {r.bleu_std:.2f}",
            f"{r.chrf_mean:.2f}",
            _g(r.attention_gflops),
            _g(r.total_gflops),
            f"{r.params / 1e6:.2f}",
            fmt_number(r.sublayer_ms_30, 2),
            fmt_number(r.sublayer_ms_100, 2),
            f"{r.train_steps:,.0f}",
            fmt_number(r.train_tokens_per_s, 0),
            fmt_number(r.decode_sentences_per_s, 1),
            _p(r.p_value, r.reference),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += list(notes)
    return "\n".join(lines).rstrip() + "\n"


@dataclass
class Comparison:
    """Two settings compared on the seeds both finished: mean BLEU of each, the 95 % t interval of
    the mean paired difference over seeds (None with one seed) and the cluster-bootstrap p-value."""

    a: str
    b: str
    seeds: list[int]
    bleu_a: float
    bleu_b: float
    p_value: Optional[float]
    diff_ci_low: Optional[float] = None
    diff_ci_high: Optional[float] = None


def compare_runs(records: Sequence[RunRecord], a: str, b: str, p_value: float | None) -> Comparison | None:
    """Mean BLEU of settings ``a`` and ``b`` over their common seeds (None when they share none)."""
    runs_a = {r.seed: r for r in records if r.label == a}
    runs_b = {r.seed: r for r in records if r.label == b}
    seeds = sorted(set(runs_a) & set(runs_b))
    if not seeds:
        return None
    s = paired_stats(records, a, b)
    return Comparison(a=a, b=b, seeds=seeds, bleu_a=statistics.fmean(runs_a[k].bleu for k in seeds),
                      bleu_b=statistics.fmean(runs_b[k].bleu for k in seeds), p_value=p_value,
                      diff_ci_low=None if s is None else s.ci_low, diff_ci_high=None if s is None else s.ci_high)


def comparisons_markdown(comparisons: Sequence[Comparison]) -> list[str]:
    """Markdown lines of the pairwise comparison table (empty when there is none)."""
    if not comparisons:
        return []
    lines = ["Pairwise comparisons (seeds both settings finished; 95 % CI: t interval of the mean paired "
             "difference over seeds; p: cluster bootstrap of A against B):", "",
             "| A | B | seeds | BLEU A | BLEU B | A − B | 95 % CI | p |", "|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        ci = "–" if c.diff_ci_low is None or c.diff_ci_high is None else f"[{c.diff_ci_low:+.2f}, {c.diff_ci_high:+.2f}]"
        lines.append(f"| {c.a} | {c.b} | {' '.join(map(str, c.seeds))} | {c.bleu_a:.2f} | {c.bleu_b:.2f} | "
                     f"{c.bleu_a - c.bleu_b:+.2f} | {ci} | {_p(c.p_value, False)} |")
    return lines + [""]


def results_json(
    study: dict[str, Any], rows: Sequence[SettingRow], records: Sequence[RunRecord],
    comparisons: Sequence[Comparison] = (),
) -> dict[str, Any]:
    """Plain data of the whole study: its config, the table rows, the pairwise comparisons and every run record."""
    return {
        "study": study,
        "settings": [to_dict(r) for r in rows],
        "comparisons": [to_dict(c) for c in comparisons],
        "runs": [{**to_dict(r), "total_flops": r.total_flops} for r in records],
    }
