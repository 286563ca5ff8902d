"""The random-number state of every training process, so that dropout continues exactly on resume."""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger("nmt")


def local_rng_state() -> dict[str, Any]:
    """This process's torch generators: CPU, and every visible CUDA device (empty list without CUDA)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {"torch": torch.get_rng_state(), "cuda": list(cuda)}


def gather_rng_states() -> list[dict[str, Any]]:
    """Every rank's ``local_rng_state()``, indexed by global rank (a collective under torch.distributed)."""
    mine = local_rng_state()
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return [mine]
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, mine)
    return states


def restore_rng_state(saved: dict[str, Any], rank: int, world_size: int) -> None:
    """Set this process's generators from ``saved`` (a checkpoint's ``nmt.rng``) for ``rank``.

    ``saved["ranks"]`` holds one state per rank; checkpoints from before it only have rank 0's
    CPU state under ``saved["torch"]``. A different world size cannot continue every stream, so the
    generators of ranks without a saved state are left as seeded (with a warning).
    """
    ranks = saved.get("ranks")
    if ranks is None:
        if world_size > 1:
            log.warning("the checkpoint holds rank 0's random state only: every rank resumes with it")
        torch.set_rng_state(saved["torch"])
        return
    if len(ranks) != world_size:
        log.warning("checkpoint written by %d processes, resumed by %d: dropout does not continue exactly",
                    len(ranks), world_size)
    if rank >= len(ranks):
        return
    state = ranks[rank]
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
