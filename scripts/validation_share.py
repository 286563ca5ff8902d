"""How much of a training run its validations took, from the run's TensorBoard logs.

Training logs ``train/loss`` every few updates with a wall time; an interval between two such events
that contains a validation (``val_bleu``) took longer than its updates alone. Per log segment (one
process: a run resumed later has several), the updates' own time is the median seconds per update of
the intervals without a validation; the rest of an interval with one is that validation's cost.

    python scripts/validation_share.py runs/repro/multi30k-ende/self/1111/seed1 runs/repro/multi30k-ende/self/0111/seed1

Prints one JSON line per run: each validation's update and extra seconds (also in updates' worth),
and the validations' share of the run's logged training time.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def validation_costs(run_dir: Path) -> dict:
    """Per validation (update, extra seconds, updates' worth) and the total share, over the run's segments."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    costs, total = [], 0.0
    for events in sorted((run_dir / "tb").glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        tags = acc.Tags()["scalars"]
        if "train/loss" not in tags:
            continue
        train = [(e.step, e.wall_time) for e in acc.Scalars("train/loss")]
        vals = [e.step for e in acc.Scalars("val_bleu")] if "val_bleu" in tags else []
        # (updates, seconds, the validation inside the interval or None) per interval between two losses
        spans = [(b[0] - a[0], b[1] - a[1], next((v for v in vals if a[0] < v <= b[0]), None))
                 for a, b in zip(train, train[1:]) if b[0] > a[0]]
        plain = [dt / n for n, dt, v in spans if v is None]
        if not plain:
            continue
        per_update = statistics.median(plain)
        total += sum(dt for _, dt, _ in spans)
        for n, dt, v in spans:
            if v is None:
                continue
            extra = dt - n * per_update
            costs.append({"update": v + 1, "seconds": round(extra, 1), "updates_worth": round(extra / per_update, 1),
                          "s_per_update": round(per_update, 3)})
    share = sum(c["seconds"] for c in costs) / total if total else None
    return {"run": str(run_dir), "validations": costs, "share": None if share is None else round(share, 4),
            "logged_seconds": round(total, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders (with tb/)")
    for run in ap.parse_args(argv).runs:
        if not (run / "tb").is_dir():
            ap.error(f"{run}: no tb/ folder of TensorBoard logs")
        print(json.dumps(validation_costs(run)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
