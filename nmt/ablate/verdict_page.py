"""A campaign's verdicts as a page: every family decided from its finished runs (``nmt.ablate.verdict``),
written to ``<results_dir>/verdicts.{md,json}``. A family is pending until its seed count is decided
(with a seed rule) and every planned seed of its compared settings has finished."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

from nmt.ablate.campaign import Campaign, seed_count
from nmt.ablate.report import collect_records
from nmt.ablate.results import NOT_RECORDED, RunRecord, fmt_number, save_json_atomic, summarise
from nmt.ablate.twins import later_twins
from nmt.ablate.verdict import RISE_WINDOW, ClaimResult, PartResult, decide_family
from nmt.config import to_dict
from nmt.io import atomic_write_text


def _num(x: float) -> str:
    return f"{x:+.2f}".replace("-", "−")


def _p(x: float) -> str:
    return "<0.001" if x < 0.001 else f"{x:.3f}"


Decided = dict[str, tuple[list[PartResult], dict[str, ClaimResult]]]
FamilyRuns = dict[str, dict[str, list[RunRecord]]]  # family -> study kind -> its finished runs


def family_runs(campaign: Campaign) -> FamilyRuns:
    """Every family's finished runs, by study kind."""
    return {name: {kind: collect_records(st) for kind, st in studies.items()}
            for name, studies in campaign.families.items()}


def family_verdicts(campaign: Campaign, runs: FamilyRuns) -> Decided:
    """Every family's part results and claim verdicts, from its finished runs; a family is pending
    until its seed count is decided (with a seed rule) and every planned seed has finished."""
    claims = campaign.config.claims_as_data()
    out = {}
    for name, studies in campaign.families.items():
        undecided = campaign.config.seed_rule is not None and seed_count(campaign, name) is None
        planned = {} if undecided else {kind: st.seeds for kind, st in studies.items()}
        out[name] = decide_family(claims, runs[name], campaign.config.alpha, planned)
    return out


def hardware_of(campaign: Campaign, runs: FamilyRuns) -> dict[str, Counter[str]]:
    """Per family, how many of its finished runs trained on each processor (a run resumed on another
    one counts under both, joined by " + "; records from before the hardware was kept: "not recorded").
    A run shared by twins (``nmt.ablate.twins``) counts once."""
    out: dict[str, Counter[str]] = {}
    for name, studies in campaign.families.items():
        later = {(st.output_dir, label, seed) for (st, label, seed), _ in later_twins(list(studies.values()))}
        out[name] = Counter(" + ".join(r.hardware) if r.hardware else NOT_RECORDED
                            for kind, st in studies.items() for r in runs[name][kind]
                            if (st.output_dir, r.label, r.seed) not in later)
    return out


def cost_lines(campaign: Campaign, family: str, runs: FamilyRuns) -> list[str]:
    """A family's measured cost per setting, study by study, from its finished runs: the attention
    FLOPs of what the study varies over the test set (relative-position tables once per sentence: the
    cost; once per test batch beside it), parameters, the varied sublayers' forward time and training
    speed. No scores, so a pending family shows it too; empty without finished runs."""
    lines = []
    for kind, st in campaign.families[family].items():
        for row in summarise(runs[family][kind], [s.label for s in st.settings], st.reference, {}):
            batch = [r.attention_flops_per_batch / 1e9 for r in runs[family][kind]
                     if r.label == row.label and r.attention_flops_per_batch is not None]
            lines.append(f"| {row.label} ({kind}) | {len(row.seeds)} | {row.attention_gflops:.1f} | "
                         f"{fmt_number(statistics.fmean(batch) if batch else None, 1)} | {row.params / 1e6:.2f} | "
                         f"{fmt_number(row.sublayer_ms_30, 2)} / {fmt_number(row.sublayer_ms_100, 2)} | "
                         f"{fmt_number(row.train_tokens_per_s, 0)} |")
    if not lines:
        return []
    return ["Measured cost per setting (finished runs; the attention a study varies, over the test set). The "
            "FLOPs are the cost; the forward times are taken on the machine of each run as it was loaded then, "
            "and compare settings only roughly.", "",
            "| setting (study) | runs | attention GFLOPs, table per sentence (the cost) | table per test batch | "
            "params (M) | varied sublayers' ms @30 / @100 tokens | train target tokens/s |",
            "|---|---|---|---|---|---|---|", *lines, ""]


def verdicts_markdown(
    campaign: Campaign, decided: Decided, hardware: dict[str, Counter[str]] | None = None,
    runs: FamilyRuns | None = None,
) -> str:
    """The verdicts page: per family the parts' and the claims' tables, the measured cost per setting
    (with ``runs``) and what the runs trained on."""
    cfg = campaign.config
    texts = {c.id: c.text for c in cfg.claims}
    lines = [f"# Verdicts: {cfg.name}", "",
             "Mechanical rule (nmt.ablate.verdict): paired differences A − B of test BLEU over the family's "
             "planned seeds, with the 95 % t interval; the parts of a claim form an intersection-union test "
             "(support p: the largest of its parts'; refute p: the smallest times the number of parts); Holm "
             f"across the claims of each family, alpha = {cfg.alpha}; default margin {cfg.margin} BLEU. A part's "
             "own test (last column of the first table) is unadjusted and for reading only.", ""]
    for name, (parts, claims) in decided.items():
        lines += [f"## {name}", "", "| claim | pair and test | seeds | BLEU A / B | mean A − B [95 % CI] | "
                  "p support | p refute | part at alpha |", "|---|---|---|---|---|---|---|---|"]
        for r in parts:
            if r.verdict == "pending":
                means, stats = "–", "–"
                seeds = f"{r.seeds_done} of {'?' if r.seeds_planned is None else r.seeds_planned}"
            elif r.stats is None:
                means, stats, seeds = "–", "–", "<2"
            else:
                means = f"{r.stats.mean_a:.2f} / {r.stats.mean_b:.2f}"
                stats, seeds = f"{_num(r.stats.mean)} [{_num(r.stats.ci_low)}, {_num(r.stats.ci_high)}]", str(r.stats.n)
            cost = "" if r.cost_ok is None else " (A cheaper)" if r.cost_ok else " (A not cheaper)"
            p_sup, p_ref = ("–", "–") if r.verdict == "pending" else (_p(r.p_support), _p(r.p_refute))
            lines.append(f"| {r.claim} | {r.part.describe()} | {seeds} | {means} | {stats} | {p_sup} "
                         f"| {p_ref} | {r.verdict}{cost} |")
        lines += ["", "| claim | p support (Holm) | p refute (Holm) | verdict | still rising |", "|---|---|---|---|---|"]
        for cid, c in claims.items():
            rising = ", ".join(c.rising) or "–"
            if c.verdict == "pending":
                p_sup = p_ref = "–"
            else:
                p_sup, p_ref = f"{_p(c.p_support)} ({_p(c.p_support_holm)})", f"{_p(c.p_refute)} ({_p(c.p_refute_holm)})"
            lines.append(f"| {cid}. {texts[cid]} | {p_sup} | {p_ref} | **{c.verdict}** | {rising} |")
        lines += ["", f"Still rising: settings whose validation BLEU rose by more than half the margin over their "
                  f"last {RISE_WINDOW:,} updates (mean over seeds).", ""]
        if any(c.verdict == "pending" for c in claims.values()):
            lines += ["Pending: nothing is computed until every planned seed of every compared setting has finished "
                      "(seeds: finished of planned; `?` while the seed rule has not yet decided the count).", ""]
        if runs is not None:
            lines += cost_lines(campaign, name, runs)
        if hardware and hardware.get(name):
            lines += ["Trained on: " + "; ".join(f"{hw} ({n} run{'s' * (n != 1)})"
                                                  for hw, n in sorted(hardware[name].items())) + ".", ""]
    return "\n".join(lines)


def write_verdicts(campaign: Campaign) -> str:
    """Decide every family and write ``verdicts.md`` / ``verdicts.json``; returns the Markdown."""
    runs = family_runs(campaign)
    decided = family_verdicts(campaign, runs)
    md = verdicts_markdown(campaign, decided, hardware_of(campaign, runs), runs)
    out = Path(campaign.config.results_dir)
    atomic_write_text(out / "verdicts.md", md)
    save_json_atomic(out / "verdicts.json", {
        "campaign": to_dict(campaign.config),
        "families": {name: {"parts": [to_dict(r) for r in parts], "claims": {k: to_dict(c) for k, c in claims.items()}}
                     for name, (parts, claims) in decided.items()},
    })
    return md
