"""The final model of a run, chosen on the validation set only (``nmt select``).

Two choices, made one after the other on the validation split, with the checkpoint's decoding
settings (beam 5 in the shipped configs):

1. N: the average of the N best checkpoints by the validation BLEU recorded at training time, for
   N = 1 .. the number kept (``train.save_top_k``), scored with the configured length penalty;
   the best N wins (ties: the smaller N).
2. alpha: the GNMT length penalty, scored for each value of a small grid on that average; the best
   wins (ties: the configured alpha, then the smaller value). When the best is the largest value
   tried, the grid is extended upwards in steps of ``ALPHA_STEP`` until the score stops rising or
   ``alpha_max`` is reached, so that the choice is not an artefact of the grid's edge.

The chosen average is written as a checkpoint whose ``decode.alpha`` is the chosen value (so
``nmt translate`` / ``nmt test`` use it without flags), with a JSON record of every score beside it.
The test set is never read.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any, Sequence

from nmt.io import atomic_write_text
from nmt.train.average import average_checkpoints, candidates, select

log = logging.getLogger("nmt")

DEFAULT_ALPHAS = (0.6, 0.8, 1.0, 1.2, 1.5)
ALPHA_STEP = 0.5  # extension step beyond the grid's largest value
DEFAULT_ALPHA_MAX = 3.0


def _val_bleu(path: Path, split: str, overrides: dict[str, Any], max_tokens: int, pack: bool) -> float:
    """Validation BLEU of a checkpoint file with decode ``overrides``."""
    from nmt.data.datamodule import NMTDataModule
    from nmt.inference import load_model, score_split

    loaded = load_model(path, pack)
    with tempfile.TemporaryDirectory() as tmp:
        result = score_split(loaded, NMTDataModule(loaded.cfg.data), split, overrides, Path(tmp) / "hyp", max_tokens)
    return float(result["bleu"])


def _best(scores: dict[Any, float], prefer: Sequence[Any]) -> Any:
    """The key with the highest score; ties go to the earliest key of ``prefer``."""
    top = max(scores.values())
    return next(k for k in prefer if scores[k] == top)


def select_final(
    directory: str | Path,
    output: str | Path,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    max_n: int | None = None,
    split: str = "valid",
    max_tokens: int = 4000,
    pack: bool = True,
    alpha_max: float = DEFAULT_ALPHA_MAX,
) -> dict[str, Any]:
    """Choose N (best-N average) and alpha on ``split``, write the chosen model to ``output`` and the
    record to ``output`` with suffix ``.json``; return the record."""
    if not alphas or any(a < 0 for a in alphas):
        raise ValueError(f"--alphas must be one or more values >= 0, got {list(alphas)}")
    ranked = select(str(directory), None, best=max_n or len(candidates(str(directory))))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    by_n: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix=".select.", dir=output.parent) as tmp:
        for n in range(1, len(ranked) + 1):
            path = Path(tmp) / f"best{n}.ckpt"
            average_checkpoints(ranked[:n]).save(path)
            by_n[n] = _val_bleu(path, split, {}, max_tokens, pack)
            log.info("average of the %d best checkpoint(s): %s BLEU %.2f", n, split, by_n[n])
        n = _best(by_n, sorted(by_n))
        chosen = average_checkpoints(ranked[:n])
        base_alpha = float(chosen.config.get("decode", {}).get("alpha", 0.6))
        path = Path(tmp) / f"best{n}.ckpt"
        by_alpha = {base_alpha: by_n[n]}
        for a in alphas:
            if float(a) not in by_alpha:
                by_alpha[float(a)] = _val_bleu(path, split, {"alpha": float(a)}, max_tokens, pack)
                log.info("alpha %.2f: %s BLEU %.2f", a, split, by_alpha[float(a)])
        extended: list[float] = []

        def at_edge() -> bool:
            return _best(by_alpha, [base_alpha, *sorted(by_alpha)]) == max(by_alpha)

        while at_edge() and max(by_alpha) + ALPHA_STEP <= alpha_max:
            a = round(max(by_alpha) + ALPHA_STEP, 6)  # the best is at the grid's edge: look one step further
            by_alpha[a] = _val_bleu(path, split, {"alpha": a}, max_tokens, pack)
            extended.append(a)
            log.info("alpha %.2f (beyond the grid): %s BLEU %.2f", a, split, by_alpha[a])
    alpha = _best(by_alpha, [base_alpha, *sorted(by_alpha)])
    chosen.config = {**chosen.config, "decode": {**chosen.config.get("decode", {}), "alpha": alpha}}
    record = {
        "split": split,
        "checkpoints": [str(p) for p in ranked[:n]],
        "n": n,
        "alpha": alpha,
        "bleu_by_n": {str(k): v for k, v in by_n.items()},
        "bleu_by_alpha": {f"{k:g}": v for k, v in sorted(by_alpha.items())},
        "alphas_beyond_grid": extended,
        "bleu": by_alpha[alpha],
        "output": str(output),
    }
    chosen.save(output)
    atomic_write_text(output.with_suffix(".json"), json.dumps(record, indent=1) + "\n")
    return record


def format_record(record: dict[str, Any]) -> str:
    """The choice as a few lines for the terminal."""
    lines = [f"{record['split']} BLEU of the average of the N best checkpoints:"]
    lines += [f"  N={k}: {v:.2f}" for k, v in record["bleu_by_n"].items()]
    lines.append(f"{record['split']} BLEU by length penalty alpha (N={record['n']}):")
    lines += [f"  alpha={k}: {v:.2f}" for k, v in record["bleu_by_alpha"].items()]
    lines.append(f"chosen: N={record['n']}, alpha={record['alpha']:g} ({record['split']} BLEU {record['bleu']:.2f}) "
                 f"-> {record['output']}")
    return "\n".join(lines)
