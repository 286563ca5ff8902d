"""The study plot, after Figure 2 of Zhu et al. (2019): BLEU against the FLOPs of the varied attention."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nmt.ablate.results import SettingRow
from nmt.ablate.study import VARIED_FLOPS
from nmt.io import atomic_write


def flops_label(vary: str) -> str:
    """x-axis label of a study that varies ``vary`` attention."""
    return f"GFLOPs of {' + '.join(VARIED_FLOPS[vary])} attention over the test set"


def plot_study(rows: Sequence[SettingRow], path: str | Path, title: str, xlabel: str) -> Path:
    """One labelled point per setting (mean BLEU over seeds, error bar = sample std over seeds),
    the reference setting highlighted; written as PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.5), dpi=120)
    try:
        for r in rows:
            color, marker, size = ("tab:red", "*", 14) if r.reference else ("tab:blue", "o", 7)
            ax.errorbar(r.attention_gflops, r.bleu_mean, yerr=r.bleu_std, fmt=marker, color=color,
                        markersize=size, capsize=3, elinewidth=1)
            ax.annotate(r.label, (r.attention_gflops, r.bleu_mean), textcoords="offset points", xytext=(5, 5),
                        fontsize=8, fontweight="bold" if r.reference else "normal")
        ax.margins(x=0.15, y=0.15)  # room for the labels of the outermost points
        ax.set_xlabel(xlabel)
        ax.set_ylabel("BLEU (mean over seeds, bar = std)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if rows:
            ref = [r for r in rows if r.reference]
            handles = [plt.Line2D([], [], color="tab:blue", marker="o", linestyle="", label="setting")]
            if ref:
                handles.append(plt.Line2D([], [], color="tab:red", marker="*", markersize=10, linestyle="",
                                          label=f"reference ({ref[0].label})"))
            ax.legend(handles=handles, loc="best", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no finished runs", transform=ax.transAxes, ha="center", va="center")
        fig.tight_layout()
        out = Path(path)
        with atomic_write(out, "wb") as f:
            fig.savefig(f, format="png")
    finally:
        plt.close(fig)
    return out
