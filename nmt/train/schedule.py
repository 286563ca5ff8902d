"""Optimiser and learning-rate schedules (linear warm-up, then inverse square root, cosine or constant)."""

from __future__ import annotations

import math

import torch
from torch import nn

from nmt.train.config import OptimConfig


def lr_factor(step: int, cfg: OptimConfig, total_steps: int | None) -> float:
    """Multiplier of ``cfg.lr`` at optimizer update ``step`` (0-based)."""
    s = step + 1
    w = cfg.warmup_steps
    if w > 0 and s <= w:
        return s / w
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "inverse_sqrt":
        return math.sqrt(max(w, 1) / s)
    # cosine from the end of warm-up to total_steps, down to min_lr
    if not total_steps or total_steps <= w:
        raise ValueError("optim.schedule=cosine needs train.max_steps > optim.warmup_steps")
    progress = min(1.0, (s - w) / (total_steps - w))
    floor = cfg.min_lr / cfg.lr
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, cfg: OptimConfig, total_steps: int | None):
    """Adam/AdamW and a per-update LambdaLR, in Lightning's ``configure_optimizers`` format."""
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = cls(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay,
              fused=cfg.fused or None)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, cfg, total_steps))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}
