"""Resuming a run: which checkpoint, whether the config and the data still fit it (also for
``nmt validate``), and what a kill left behind."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning.pytorch.utilities import rank_zero_only

from nmt.checkpoint import VOCAB_KEYS, CheckpointError, read_raw, subword_sides
from nmt.config import ConfigError, to_dict
from nmt.data.subwords import model_identity
from nmt.experiment import ExperimentConfig

if TYPE_CHECKING:
    from nmt.data.subwords import Vocab

log = logging.getLogger("nmt")

# Keys that define the parameters or the vocabulary: a checkpoint only resumes under the same values.
FIXED_PREFIXES = ("model.", "data.subword.")
FIXED_KEYS = ("data.src_lang", "data.tgt_lang")
# what to do about a checkpoint that cannot be used, per action
REMEDY = {"resume": "delete it and resume from another checkpoint of the run (--ckpt_path FILE), or start over"
                    " (--overwrite)",
          "validate": "give an intact checkpoint"}


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


def checkpoint_entry(ckpt_path: str | Path, action: str = "resume") -> dict[str, Any]:
    """The ``nmt`` entry (config, vocabulary, subword models) of the checkpoint to ``action``
    ("resume" or "validate"); a truncated, corrupt or foreign file is a CheckpointError naming it and
    saying what to do. Memory-mapped: cheap on large files."""
    try:
        raw = read_raw(ckpt_path, mmap=True)
    except CheckpointError as e:
        raise CheckpointError(f"{e}: cannot {action} it; {REMEDY[action]}") from None
    entry = raw.get("nmt")
    if not isinstance(entry, dict) or "config" not in entry:
        raise CheckpointError(f"{ckpt_path} is not a factor-nmt checkpoint (no 'nmt' entry with config and"
                              f" vocabulary): cannot {action} it; {REMEDY[action]}")
    return entry


def check_resume_config(cfg: ExperimentConfig, ckpt_path: str | Path, action: str = "resume") -> dict[str, Any]:
    """Refuse to ``action`` ("resume", "validate") ``ckpt_path`` under a config that changes the model
    or its vocabulary (the error names every differing key); on resume, log the other changed keys.
    Returns the checkpoint's ``nmt`` entry for ``check_resume_vocab``. Reads only; writes nothing."""
    saved = checkpoint_entry(ckpt_path, action)
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
    if fixed and action == "resume":
        raise ConfigError(
            f"cannot resume from {ckpt_path}: the config differs in {'; '.join(fixed)}. These keys define the"
            f" model and its vocabulary; resume with the run's own values (its config.yaml) or start a new run"
            f" in another train.output_dir")
    if fixed:
        raise ConfigError(
            f"cannot {action} {ckpt_path}: the config differs in {'; '.join(fixed)}. These keys define the model"
            f" and its vocabulary; give the config the checkpoint was trained with (its run's config.yaml)")
    if changed and action == "resume":
        log.info("resuming from %s with changed settings: %s", ckpt_path, "; ".join(show(k) for k in changed))
    return saved


def check_resume_vocab(saved: dict[str, Any], vocab: Vocab, ckpt_path: str | Path, action: str = "resume") -> None:
    """Refuse to ``action`` the checkpoint whose ``nmt`` entry is ``saved`` when the prepared vocabulary
    differs from its own: special ids, sizes, or the subword models themselves (a model of the same
    size whose ids name other pieces). The error names the checkpoint and the data's model file."""
    current = {"pad_id": vocab.pad_id, "bos_id": vocab.bos_id, "eos_id": vocab.eos_id, "unk_id": vocab.unk_id,
               "src_size": vocab.src_size, "tgt_size": vocab.tgt_size}
    recorded = dict(saved.get("vocab") or {})
    diff = [f"vocab.{k} ({recorded[k]!r} in the checkpoint, {current[k]!r} now)"
            for k in VOCAB_KEYS if k in recorded and recorded[k] != current[k]]
    if diff:
        raise ConfigError(f"cannot {action} {ckpt_path}: the vocabulary differs: {'; '.join(diff)}."
                          f" Check data.prepared_dir and data.subword (the run's config.yaml has its values)")
    stored = subword_sides(saved.get("subword") or {}) or _recorded_models(recorded)
    if stored is None:
        return
    for side, old, path in zip(("source", "target"), stored, (vocab.src_model_path, vocab.tgt_model_path)):
        if model_identity(Path(path).read_bytes()) != model_identity(old):
            name = recorded.get(f"{'src' if side == 'source' else 'tgt'}_model", "?")
            raise ConfigError(
                f"cannot {action} {ckpt_path}: its {side} subword model ({name}, stored in the checkpoint) differs"
                f" from the data's {path}: same size, but other pieces, scores or normalization. Use the data the run"
                f" was trained on (its config.yaml: data.root, data.corpus, data.prepared_dir)")


def _recorded_models(vocab: dict[str, Any]) -> tuple[bytes, bytes] | None:
    """The bytes of the subword model files a checkpoint without stored models names, if they exist."""
    paths = [Path(vocab[k]) for k in ("src_model", "tgt_model") if k in vocab]
    if len(paths) != 2 or not all(p.is_file() for p in paths):
        return None
    return paths[0].read_bytes(), paths[1].read_bytes()


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
