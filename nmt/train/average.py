"""Checkpoint averaging: the mean of the parameters of the last N or the best N checkpoints.

Reads and writes through ``nmt.checkpoint`` (no Lightning import)."""

from __future__ import annotations

from pathlib import Path

import torch

from nmt.checkpoint import Checkpoint, check_averageable


def candidates(directory: str) -> list[tuple[Path, Checkpoint]]:
    """The checkpoints of ``directory`` except last.ckpt, one per update (a step saved twice, as by a
    resumed run that validated it again, counts once: its newest file). A folder whose checkpoints
    differ in vocabulary, subword models or model (two runs mixed) is a CheckpointError naming two."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {d}")
    by_step: dict[int, tuple[Path, Checkpoint]] = {}
    for p in sorted(d.glob("*.ckpt"), key=lambda p: (p.stat().st_mtime, p.name)):
        if p.name.startswith("last"):
            continue  # last.ckpt duplicates the newest step
        ckpt = Checkpoint.load(p)
        if ckpt.averaged_from is not None:
            continue  # an average written next to its inputs is not a training step
        by_step[ckpt.global_step] = (p, ckpt)  # one file per update: the newest written
    found = list(by_step.values())
    if not found:
        raise FileNotFoundError(f"no checkpoints (*.ckpt other than last.ckpt) in {d}")
    check_averageable([c for _, c in found])
    return found


def select(directory: str, last: int | None, best: int | None) -> list[Path]:
    """Paths of the ``last`` latest (by step) or ``best`` (by validation BLEU) checkpoints."""
    if (last is None) == (best is None):
        raise ValueError("give exactly one of --last N or --best N")
    cands = candidates(directory)
    n = last if last is not None else best
    if n is None or n < 1 or n > len(cands):
        raise ValueError(f"cannot average {n} checkpoints: {len(cands)} available in {directory}")
    if last is not None:
        cands.sort(key=lambda pc: pc[1].global_step, reverse=True)
    else:
        missing = [str(p) for p, c in cands if c.val_bleu is None]
        if missing:
            raise ValueError(f"checkpoints without a validation BLEU cannot be ranked: {', '.join(missing)}")
        cands.sort(key=lambda pc: pc[1].val_bleu, reverse=True)
    return [p for p, _ in cands[:n]]


def average_checkpoints(paths: list[str | Path]) -> Checkpoint:
    """A checkpoint whose weights are the element-wise mean of the given ones (same config and
    subword models as the first; non-float tensors from the last). Checkpoints of different
    vocabularies, subword models or models are a CheckpointError naming two of them."""
    if not paths:
        raise ValueError("no checkpoints to average")
    ckpts = [Checkpoint.load(p) for p in paths]
    check_averageable(ckpts)
    keys = ckpts[0].state_dict.keys()
    avg = {}
    for k in keys:
        tensors = [c.state_dict[k] for c in ckpts]
        if tensors[0].is_floating_point():
            avg[k] = torch.stack([t.double() for t in tensors]).mean(0).to(tensors[0].dtype)
        else:
            avg[k] = tensors[-1]
    first = ckpts[0]
    return Checkpoint(avg, first.config, first.vocab, first.subword, max(c.global_step for c in ckpts),
                      val_bleu=None, averaged_from=[str(p) for p in paths])


def average_command(
    directory: str | None, checkpoints: list[str] | None, last: int | None, best: int | None, output: str
) -> list[Path]:
    """``nmt average``: select, average and atomically write; returns the averaged paths."""
    if checkpoints:
        paths = [Path(p) for p in checkpoints]
    elif directory:
        paths = select(directory, last, best)
    else:
        raise ValueError("give --dir (with --last or --best) or --checkpoints")
    average_checkpoints(paths).save(output)
    print(f"averaged {len(paths)} checkpoints -> {output}")
    for p in paths:
        print(f"  {p}")
    return paths
