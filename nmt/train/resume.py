"""Resuming a run: which checkpoint, whether the config still fits it, and what a kill left behind."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_only

from nmt.config import ConfigError, to_dict
from nmt.experiment import ExperimentConfig

log = logging.getLogger("nmt")

# Keys that define the parameters or the vocabulary: a checkpoint only resumes under the same values.
FIXED_PREFIXES = ("model.", "data.subword.")
FIXED_KEYS = ("data.src_lang", "data.tgt_lang")
VOCAB_KEYS = ("pad_id", "bos_id", "eos_id", "unk_id", "src_size", "tgt_size")


def last_checkpoint(cfg: ExperimentConfig) -> Path:
    """``<output_dir>/checkpoints/last.ckpt``."""
    return Path(cfg.train.output_dir) / "checkpoints" / "last.ckpt"


def resolve_resume(cfg: ExperimentConfig, ckpt_path: str | None) -> str | None:
    """``last`` -> the run's last.ckpt (error if absent), ``auto`` -> last.ckpt if present, else a path."""
    if ckpt_path is None:
        return None
    last = last_checkpoint(cfg)
    if ckpt_path == "auto":
        return str(last) if last.is_file() else None
    if ckpt_path == "last":
        if not last.is_file():
            raise FileNotFoundError(f"--ckpt_path last: no checkpoint at {last} (start without --ckpt_path)")
        return str(last)
    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"checkpoint not found: {ckpt_path}")
    return ckpt_path


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}{k}."))
    return out


def _fixed(key: str) -> bool:
    return key.startswith(FIXED_PREFIXES) or key in FIXED_KEYS


def check_resume_config(cfg: ExperimentConfig, ckpt_path: str) -> dict[str, Any]:
    """Refuse to resume ``ckpt_path`` under a config that changes the model or its vocabulary (the
    error names every differing key); log the other changed keys. Returns the checkpoint's
    vocabulary for ``check_resume_vocab``. Reads only; writes nothing."""
    saved = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True).get("nmt")
    if not isinstance(saved, dict) or "config" not in saved:
        raise ValueError(f"{ckpt_path} is not a factor-nmt checkpoint (no 'nmt' entry with config and vocabulary)")
    old_plain = saved["config"]
    try:  # fill keys added since the checkpoint was written with their defaults
        old_plain = to_dict(ExperimentConfig.from_plain(old_plain))
    except ConfigError:
        pass
    old, new = _flat(old_plain), _flat(to_dict(cfg))
    missing = object()
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k, missing) != new.get(k, missing))
    show = lambda k: f"{k} ({old.get(k, '<absent>')!r} in the checkpoint, {new.get(k, '<absent>')!r} now)"
    fixed = [show(k) for k in changed if _fixed(k)]
    if fixed:
        raise ConfigError(
            f"cannot resume from {ckpt_path}: the config differs in {'; '.join(fixed)}. These keys define the"
            f" model and its vocabulary; resume with the run's own values (its config.yaml) or start a new run"
            f" in another train.output_dir")
    if changed:
        log.info("resuming from %s with changed settings: %s", ckpt_path, "; ".join(show(k) for k in changed))
    return dict(saved.get("vocab") or {})


def check_resume_vocab(saved: dict[str, Any], current: dict[str, Any], ckpt_path: str) -> None:
    """Refuse to resume when the prepared vocabulary differs from the checkpoint's (sizes or special ids)."""
    diff = [f"vocab.{k} ({saved[k]!r} in the checkpoint, {current[k]!r} now)"
            for k in VOCAB_KEYS if k in saved and saved[k] != current[k]]
    if diff:
        raise ConfigError(f"cannot resume from {ckpt_path}: the vocabulary differs: {'; '.join(diff)}."
                          f" Check data.prepared_dir and data.subword (the run's config.yaml has its values)")


@rank_zero_only
def remove_stale_temp_files(directory: str | Path) -> list[Path]:
    """Delete the temporary files (``.NAME.*.tmp``, ``NAME.tmp``) an interrupted atomic write left in
    ``directory``; returns them. Called before training starts, when no write is in progress."""
    d = Path(directory)
    if not d.is_dir():
        return []
    stale = sorted(p for p in d.iterdir() if p.is_file() and p.name.endswith(".tmp"))
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        log.info("removed %d temporary file(s) left by an interrupted write in %s: %s",
                 len(stale), d, ", ".join(p.name for p in stale))
    return stale
