"""The report of ``nmt analyze``: tables (markdown, CSV, JSON), one plot per role, a text summary."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from nmt.analyze.terms import dominant_term
from nmt.modules.base import ROLES

CONTRIBUTION_COLUMNS = ("module", "role", "layer", "term", "variance", "share", "entropy")
ABLATION_COLUMNS = ("role", "layer", "term", "bleu", "chrf", "d_bleu", "d_chrf")


def contribution_rows(contributions: dict[str, dict[str, Any]], pairs: bool = True) -> list[dict[str, Any]]:
    """One row per module and term; with ``pairs`` one "cov Ei,Ej" row per pair of terms (2 Cov, the
    part of the logit variance the pair adds); the "covariance" row (all pairs together), the "all"
    row (the whole logit: variance, share 1, the model's attention entropy) and the "uniform" row
    (entropy of uniform weights over the allowed keys: the largest possible)."""
    rows = []
    for name, c in contributions.items():
        base = {"module": name, "role": c["role"], "layer": c["layer"]}
        total = c["variance_all"]
        shared = c["covariance_share"] is not None
        for t in c["terms"]:
            rows.append({**base, "term": t, "variance": c["variance"][t], "share": c["share"][t],
                         "entropy": c["entropy"][t]})
        if pairs:
            for pair, cov in c["covariance"].items():
                rows.append({**base, "term": f"cov {pair}", "variance": cov, "share": cov / total if shared else None,
                             "entropy": None})
        cov = total - sum(c["variance"].values())
        rows.append({**base, "term": "covariance", "variance": cov, "share": c["covariance_share"], "entropy": None})
        rows.append({**base, "term": "all", "variance": total, "share": 1.0 if shared else None,
                     "entropy": c["entropy_all"]})
        rows.append({**base, "term": "uniform", "variance": None, "share": None, "entropy": c["entropy_uniform"]})
    return rows


def removal_cost(ablation: list[dict[str, Any]], role: str, layer: int, term: str, layers_in_role: int):
    """The ablation row that removes ``term`` from ``layer`` of ``role`` alone (the all-layers row when
    the role has one layer holding it), or None."""
    for r in ablation:
        if r["role"] == role and r["term"] == term and r["layer"] == layer:
            return r
    if layers_in_role == 1:
        for r in ablation:
            if r["role"] == role and r["term"] == term and r["layer"] == "all":
                return r
    return None


def _cost_text(d_bleu: float) -> str:
    return f"costs {0.0 - d_bleu:.1f} BLEU" if d_bleu <= 0 else f"gains {d_bleu:.1f} BLEU"


def summary(contributions: dict[str, dict[str, Any]], ablation: list[dict[str, Any]]) -> list[str]:
    """Plain-text findings: per module the term with the largest variance share and what removing it
    from that layer costs; per role what removing each term from every layer costs."""
    lines = []
    for role in ROLES:
        mods = {n: c for n, c in contributions.items() if c["role"] == role}
        for name, c in mods.items():
            branch = name.split("/", 1)[1][len(f"layer{c['layer']}"):]  # ".j" inside a combination
            where = f"{role} layer {c['layer']}" + (f" (branch {branch[1:]})" if branch else "")
            top = dominant_term(c)
            if top is None:
                lines.append(f"in {where}, the attention logits do not vary over the keys")
                continue
            term, share = top
            text = f"in {where}, {term} carries {100 * share:.0f} % of the logit variance"
            if c["covariance_share"] is not None and len(c["terms"]) > 1:
                text += f" (cross-term covariance {100 * c['covariance_share']:+.0f} %)"
            n_layers = len({m["layer"] for m in mods.values() if term in m["terms"]})
            row = removal_cost(ablation, role, c["layer"], term, n_layers)
            if row is not None:
                text += f"; removing it {_cost_text(row['d_bleu'])}"
            lines.append(text)
        for r in ablation:
            if r["role"] == role and r["layer"] == "all":
                lines.append(f"removing {r['term']} from every {role} layer {_cost_text(r['d_bleu'])} "
                             f"(BLEU {r['bleu']:.1f}, chrF {r['d_chrf']:+.1f})")
    return lines


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{100 * v:.1f} %" if pct else f"{v:.3f}"
    return str(v)


def markdown(result: dict[str, Any]) -> str:
    """The report as markdown: settings, summary, contribution table, ablation table."""
    out = [f"# Term analysis of {result['checkpoint']}", "",
           f"Split `{result['split']}`, {result['sentences']} sentences (teacher-forced for the statistics).", ""]
    out += ["## Summary", ""] + [f"- {line}" for line in result["summary"]] + [""]
    out += ["## Term contributions", "",
            "Share of the variance of the logits across the allowed keys (per query and head, summed over "
            "the split); `covariance` is the cross-term part (per pair of terms in contributions.csv), so the "
            "shares and it add up to 100 %. Entropy (nats) of the weights the term alone would give; `all`: "
            "the model's weights; `uniform`: uniform weights over the allowed keys (the maximum).", "",
            "| module | term | variance | share | entropy |", "|---|---|---:|---:|---:|"]
    for r in contribution_rows(result["contributions"], pairs=False):
        out.append(f"| {r['module']} | {r['term']} | {_fmt(r['variance'])} | {_fmt(r['share'], True)} | "
                   f"{_fmt(r['entropy'])} |")
    if result["ablation"]:
        intact = result["ablation"][0]
        out += ["", "## Test-time removal", "",
                f"Decoding: {json.dumps(result['decode'])}. Intact model: BLEU {intact['bleu']:.2f}, "
                f"chrF {intact['chrf']:.2f}.", "",
                "| role | layer | term removed | BLEU | chrF | ΔBLEU | ΔchrF |", "|---|---|---|---:|---:|---:|---:|"]
        for r in result["ablation"][1:]:
            out.append(f"| {r['role']} | {r['layer']} | {r['term']} | {r['bleu']:.2f} | {r['chrf']:.2f} | "
                       f"{r['d_bleu']:+.2f} | {r['d_chrf']:+.2f} |")
    return "\n".join(out) + "\n"


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in columns} for r in rows)


def plot_role(result: dict[str, Any], role: str, path: Path) -> bool:
    """Per module of ``role``: variance shares per term (and the covariance part), and the BLEU change
    of each test-time removal (per layer, and all layers); False when the role has no module."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mods = {n: c for n, c in result["contributions"].items() if c["role"] == role}
    if not mods:
        return False
    terms = sorted({t for c in mods.values() for t in c["terms"]})
    ablation = [r for r in result["ablation"] if r["role"] == role]
    fig, axes = plt.subplots(1, 2 if ablation else 1, figsize=(11 if ablation else 6, 3.6), squeeze=False)
    ax = axes[0][0]
    names = list(mods)
    series = terms + ["covariance"]
    width = 0.8 / len(series)
    for k, t in enumerate(series):
        vals = [(c["share"].get(t) if t != "covariance" else c["covariance_share"]) or 0.0 for c in mods.values()]
        ax.bar([i + k * width for i in range(len(names))], [100 * v for v in vals], width, label=t)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], [n.split("/", 1)[1] for n in names])
    ax.set_ylabel("% of logit variance over keys")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_title(f"{role}: term contributions", fontsize=9)
    ax.legend(fontsize=7)
    if ablation:
        ax = axes[0][1]
        groups = sorted({r["layer"] for r in ablation}, key=lambda x: (x == "all", str(x)))
        width = 0.8 / len(terms)
        for k, t in enumerate(terms):
            by = {r["layer"]: r["d_bleu"] for r in ablation if r["term"] == t}
            ax.bar([i + k * width for i in range(len(groups))], [by.get(g, 0.0) for g in groups], width, label=t)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))],
                      [g if g == "all" else f"layer{g}" for g in groups])
        ax.set_ylabel("BLEU change when removed")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_title(f"{role}: test-time removal", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_report(result: dict[str, Any], out: Path) -> list[Path]:
    """Write analysis.json, analysis.md, contributions.csv, ablation.csv (when removals ran),
    summary.txt and terms_<role>.png per role into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "analysis.json", out / "analysis.md", out / "contributions.csv", out / "summary.txt"]
    paths[0].write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(result), encoding="utf-8")
    _write_csv(paths[2], contribution_rows(result["contributions"]), CONTRIBUTION_COLUMNS)
    paths[3].write_text("".join(line + "\n" for line in result["summary"]), encoding="utf-8")
    if result["ablation"]:
        paths.append(out / "ablation.csv")
        intact = [{**result["ablation"][0], "role": "intact"}]
        _write_csv(paths[-1], intact + result["ablation"][1:], ABLATION_COLUMNS)
    for role in ROLES:
        if plot_role(result, role, out / f"terms_{role}.png"):
            paths.append(out / f"terms_{role}.png")
    return paths
