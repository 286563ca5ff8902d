"""Score checkpoints on several splits and length penalties at once (``python -m nmt.selection.sweep``).

For each checkpoint, split and alpha: what ``nmt test --checkpoint C --split S --alpha A`` reports
(the same code, ``nmt.inference.score_split``: detokenised output, sacrebleu's default 13a BLEU and
chrF), plus the brevity penalty and the output / reference length ratio (13a tokens) behind the
BLEU, and the mean source and output length. Each model is loaded once. The hypotheses go to
``OUTPUT/<name>.<split>.alpha<A>.hyp`` and the table to ``OUTPUT/sweep.json``; a plain table is
printed. This is how docs/results.md measures the final-model rule of ``nmt select`` on both the
validation and the test split; ``nmt select`` itself never reads the test split.

    python -m nmt.selection.sweep --checkpoints last=RUN/checkpoints/last.ckpt best3=AVG.ckpt \\
        --splits valid test --alphas 0.6 1.0 1.5 --output runs/sweep
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence


def sweep(
    checkpoints: dict[str, str | Path],
    splits: Sequence[str],
    alphas: Sequence[float],
    output: str | Path,
    beam: int | None = None,
    max_tokens: int = 4000,
) -> list[dict[str, Any]]:
    """One row per (checkpoint, split, alpha), in that order; also written to ``output/sweep.json``."""
    from nmt import io as nmt_io
    from nmt.data.datamodule import NMTDataModule
    from nmt.inference import load_model, score_split

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, path in checkpoints.items():
        loaded = load_model(path)
        dm = NMTDataModule(loaded.cfg.data)
        for split in splits:
            srcs = dm.sources(split)
            for alpha in alphas:
                overrides: dict[str, Any] = {"alpha": float(alpha)}
                if beam is not None:
                    overrides["beam"] = beam
                hyp_path = out / f"{name}.{split}.alpha{alpha:g}.hyp"
                result = score_split(loaded, dm, split, overrides, hyp_path, max_tokens)
                hyps = nmt_io.read_lines(hyp_path)
                rows.append({
                    "checkpoint": name, "path": str(path), "split": split, "alpha": float(alpha),
                    "beam": beam if beam is not None else loaded.cfg.decode.beam,
                    "bleu": result["bleu"], "chrf": result["chrf"], "bp": result["bp"],
                    "length_ratio": result["length_ratio"], "hyp_len": result["hyp_len"], "ref_len": result["ref_len"],
                    "src_words": sum(len(s.split()) for s in srcs) / len(srcs),
                    "hyp_words": sum(len(h.split()) for h in hyps) / len(hyps),
                    "sentences": len(hyps), "hypotheses": str(hyp_path), "bleu_signature": result["bleu_signature"],
                })
                print(format_row(rows[-1]), flush=True)
                nmt_io.atomic_write_text(out / "sweep.json", json.dumps(rows, indent=1) + "\n")
    return rows


def format_row(r: dict[str, Any]) -> str:
    """One row of the printed table."""
    return (f"{r['checkpoint']:<12} {r['split']:<6} alpha {r['alpha']:<4g} BLEU {r['bleu']:6.2f}  chrF {r['chrf']:6.2f}  "
            f"BP {r['bp']:.3f}  ratio {r['length_ratio']:.3f}  hyp {r['hyp_len']:>6} ref {r['ref_len']:>6}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nmt.selection.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", nargs="+", required=True, help="NAME=PATH of each checkpoint")
    p.add_argument("--splits", nargs="+", default=["valid", "test"], help="data splits (default: valid test)")
    p.add_argument("--alphas", type=float, nargs="+", default=[0.6], help="length penalties (default: 0.6)")
    p.add_argument("--beam", type=int, help="beam size (default: each checkpoint's)")
    p.add_argument("--max_tokens", type=int, default=4000, help="source tokens per decoding batch")
    p.add_argument("--output", "-o", required=True, help="folder for the hypotheses and sweep.json")
    args = p.parse_args(argv)
    named = {}
    for item in args.checkpoints:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            p.error(f"--checkpoints takes NAME=PATH, got {item!r}")
        named[name] = path
    sweep(named, args.splits, args.alphas, args.output, args.beam, args.max_tokens)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
