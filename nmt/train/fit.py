"""Builds the Lightning Trainer for an experiment and runs fit / validate."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from nmt.checkpoint import global_step as checkpoint_step
from nmt.config import ConfigError
from nmt.data.datamodule import NMTDataModule
from nmt.data.subwords import model_identity
from nmt.experiment import ExperimentConfig, save_config
from nmt.io import atomic_write_bytes
from nmt.lock import FileLock
from nmt.train.checkpoint_io import AtomicCheckpointIO
from nmt.train.config import TrainConfig
from nmt.train.module import TranslationTask
from nmt.train.resume import (
    check_resume_config,
    check_resume_vocab,
    last_checkpoint,
    remove_stale_temp_files,
    resolve_resume,
)
from nmt.train.stopping import LastCheckpointOnStop

log = logging.getLogger("nmt")

LOCK = ".lock"  # in the output_dir while a process trains there (nmt.lock)
RUN_OUTPUTS = ("checkpoints", "tb", "subword", "config.yaml")  # what fit writes in the output_dir


def vocab_info(dm: NMTDataModule, run_dir: str | Path | None) -> dict[str, Any]:
    """Plain-data description of the vocabulary, stored in checkpoints. The subword models are
    copied into ``run_dir/subword/`` so that a run directory translates on its own (``run_dir``
    None: the data's own model files are named and nothing is written)."""
    v = dm.vocab
    paths = {"src": str(Path(v.src_model_path).resolve()), "tgt": str(Path(v.tgt_model_path).resolve())}
    if run_dir is not None:
        sub = Path(run_dir) / "subword"
        sub.mkdir(parents=True, exist_ok=True)
        for side, src in (("src", v.src_model_path), ("tgt", v.tgt_model_path)):
            dst = sub / f"{side}.model"
            data = Path(src).read_bytes()
            if not dst.is_file() or model_identity(dst.read_bytes()) != model_identity(data):
                atomic_write_bytes(dst, data)
            paths[side] = str(dst.resolve())
    return {
        "pad_id": v.pad_id,
        "bos_id": v.bos_id,
        "eos_id": v.eos_id,
        "unk_id": v.unk_id,
        "src_size": v.src_size,
        "tgt_size": v.tgt_size,
        "src_model": paths["src"],
        "tgt_model": paths["tgt"],
    }


def check_trainer_flags(t: TrainConfig) -> None:
    """ConfigError naming the key unless Lightning can train on this machine with ``t``'s accelerator,
    devices, strategy, precision and number of nodes (a GPU asked for is present, the strategy exists,
    ...). Writes nothing: run before any data or run folder is touched."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if (t.accelerator == "cuda" and not cuda) or (t.accelerator == "gpu" and not (cuda or mps)):
        raise ConfigError(f"train.accelerator: {t.accelerator!r} needs a GPU, and this machine has none"
                          " (torch.cuda.is_available() is false); use cpu or auto")
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.trainer.connectors.accelerator_connector import _AcceleratorConnector

    quiet = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [q.level for q in quiet]
    try:
        for q in quiet:
            q.setLevel(logging.ERROR)  # the Trainer logs its choices once, when it is built
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _AcceleratorConnector(devices=t.devices, accelerator=t.accelerator, strategy=t.strategy,
                                  num_nodes=t.num_nodes, precision=t.precision)
    except (MisconfigurationException, ValueError, TypeError, RuntimeError, ImportError) as e:
        text = str(e).strip()
        key = next((k for k, words in (("devices", ("devices", "device")), ("strategy", ("strategy",)),
                                       ("precision", ("recision", "AMP")), ("num_nodes", ("num_nodes",)),
                                       ("accelerator", ("ccelerator", "backend", "gpu", "GPU")))
                    if any(w in text for w in words)), "accelerator")
        first = text.splitlines()[0] if text else type(e).__name__
        raise ConfigError(f"train.{key} = {getattr(t, key)!r} cannot be used here: {first}") from None
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)


def build_trainer(
    cfg: ExperimentConfig, *, enable_progress_bar: bool = True, extra_callbacks: Sequence[L.Callback] = ()
) -> L.Trainer:
    """A Lightning Trainer configured from ``cfg.train`` (checkpoints, logger, early stopping), with
    ``extra_callbacks`` added (e.g. a ``ThroughputRecorder``).

    Checkpoints: the ``save_top_k`` best by validation BLEU (``stepNNNNNNN-bleuXX.XX.ckpt``, one file
    per step: a resumed run that validates a step again replaces its file), and ``last.ckpt``,
    refreshed every ``checkpoint_every_steps`` updates and every ``checkpoint_every_minutes``, at the
    end, and on SIGTERM/SIGINT, whatever validation says.
    """
    t = cfg.train
    out = Path(t.output_dir)
    ckpt = ModelCheckpoint(
        dirpath=out / "checkpoints",
        filename="step{step:07d}-bleu{val_bleu:.2f}",
        auto_insert_metric_name=False,
        monitor="val_bleu",
        mode="max",
        save_top_k=t.save_top_k,
        save_last=False,
        enable_version_counter=False,
    )
    last = LastCheckpointOnStop(last_checkpoint(cfg))
    callbacks: list[Any] = [ckpt, LearningRateMonitor(logging_interval="step"), last, *extra_callbacks]
    cadences = [{"every_n_train_steps": t.checkpoint_every_steps}] if t.checkpoint_every_steps else []
    if t.checkpoint_every_minutes:
        cadences.append({"train_time_interval": timedelta(minutes=t.checkpoint_every_minutes)})
    for cadence in cadences:  # Lightning takes one trigger per callback; both write last.ckpt
        # a plain file named "last" rather than save_last=True, whose end-of-training copy would
        # carry a finished loop state that does not resume exactly
        callbacks.append(ModelCheckpoint(dirpath=out / "checkpoints", filename="last", monitor=None, save_top_k=1,
                                         enable_version_counter=False, **cadence))
    if t.patience > 0:
        callbacks.append(EarlyStopping(monitor="val_bleu", mode="max", patience=t.patience))
    max_time = {"minutes": t.max_time_minutes} if t.max_time_minutes else None
    return L.Trainer(
        default_root_dir=str(out),
        logger=TensorBoardLogger(str(out), name="tb", version=""),
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        max_steps=t.max_steps,
        max_epochs=t.max_epochs,
        max_time=max_time,
        val_check_interval=t.val_every_steps * t.accumulate_grad_batches,
        check_val_every_n_epoch=None,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=t.gradient_clip_val or None,
        precision=t.precision,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        log_every_n_steps=t.log_every_steps,
        use_distributed_sampler=False,  # the data module shards token-budget batches itself
        enable_progress_bar=enable_progress_bar,
        num_sanity_val_steps=0,
    )


def _starts_the_run() -> bool:
    """Whether this process starts the run: not a further rank that a DDP launcher started."""
    return rank_zero_only.rank == 0 and os.environ.get("NODE_RANK", "0") in ("", "0")


def _inside(path: str | Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


def previous_run(out: Path) -> list[str]:
    """What ``out`` already holds (its entries but the lock file), folders with a trailing ``/``."""
    if not out.is_dir():
        return []
    return sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir() if p.name != LOCK)


def _remove_previous_run(out: Path) -> None:
    """Delete what ``fit`` writes in ``out`` (``RUN_OUTPUTS``); other files stay, and are named."""
    removed = []
    for name in RUN_OUTPUTS:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(name)
    kept = previous_run(out)
    log.warning("--overwrite: removed the previous run's %s from %s%s", ", ".join(removed) or "outputs", out,
                f"; kept what nmt fit does not write: {', '.join(kept)}" if kept else "")


def fit(
    cfg: ExperimentConfig, ckpt_path: str | None = None, *, overwrite: bool = False, enable_progress_bar: bool = True,
    extra_callbacks: Sequence[L.Callback] = (),
) -> L.Trainer:
    """Train per ``cfg``; ``ckpt_path`` = None | "last" | "auto" | a checkpoint path (resume);
    ``extra_callbacks`` join the Trainer's own.

    The output_dir holds one run: a new run (no ``ckpt_path``, or a checkpoint of another folder)
    in a folder that is not empty is refused, unless ``overwrite`` (the previous run's checkpoints,
    logs, subword models and config are deleted first); "auto" and "last" continue the folder's run.
    One process at a time trains in a folder (the lock file ``<output_dir>/.lock``, ``nmt.lock``).
    Trainer flags that cannot work here, and a resume under a config or data that changes the model or
    the vocabulary, are refused before anything is written. On SIGTERM/SIGINT, raises ``Interrupted``
    (a ``SystemExit`` with status 128 + signal number) once last.ckpt holds the last finished update.
    """
    check_trainer_flags(cfg.train)
    out = Path(cfg.train.output_dir)
    resume = resolve_resume(cfg, ckpt_path)
    continues = ckpt_path in ("auto", "last") or (resume is not None and _inside(resume, out))
    if overwrite and continues:
        raise ConfigError(f"--overwrite deletes the run in {out} that --ckpt_path {ckpt_path} continues: give one"
                          " of them")
    saved = check_resume_config(cfg, resume) if resume else None
    lock = FileLock(out / LOCK, f"run folder {out}") if _starts_the_run() else None
    with lock if lock is not None else contextlib.nullcontext():
        previous = previous_run(out) if lock is not None and not continues else []
        if previous and not overwrite:
            shown = ", ".join(previous[:4]) + (", ..." if len(previous) > 4 else "")
            raise ConfigError(
                f"train.output_dir {out} is not empty ({shown}): it holds another run. Resume it (--ckpt_path auto),"
                f" start over (--overwrite deletes its {'/, '.join(RUN_OUTPUTS)}) or choose another train.output_dir")
        if cfg.train.num_threads > 0:
            torch.set_num_threads(cfg.train.num_threads)
        L.seed_everything(cfg.train.seed, workers=True, verbose=False)
        dm = NMTDataModule(cfg.data)
        dm.setup("fit")  # prepares what is not cached; Lightning's prepare_data later logs the summary
        if resume and saved:
            check_resume_vocab(saved, dm.vocab, resume)
        if previous:
            _remove_previous_run(out)
        remove_stale_temp_files(last_checkpoint(cfg).parent)
        task = TranslationTask(cfg, vocab_info(dm, out))
        log.info("model: %d parameters", task.model.num_parameters())
        if cfg.train.compile:
            t0 = time.perf_counter()
            task.model.compile()  # in place: parameter names (and checkpoints) are unchanged
            log.info("torch.compile wrapped the model in %.1fs (compilation happens on the first steps)",
                     time.perf_counter() - t0)
        save_config(cfg, out / "config.yaml")
        trainer = build_trainer(cfg, enable_progress_bar=enable_progress_bar, extra_callbacks=extra_callbacks)
        trainer.fit(task, datamodule=dm, ckpt_path=resume)
        _save_final_state(trainer, last_checkpoint(cfg))
    return trainer


def _save_final_state(trainer: L.Trainer, last: Path) -> None:
    """Make sure last.ckpt holds the final update. ``LastCheckpointOnStop`` writes it after the update
    that reaches max_steps; a run stopped otherwise (max_time, early stopping, max_epochs) gets it
    here, after fit ended, with a finished loop state. Writes only when last.ckpt is missing or behind."""
    saved_step = -1
    if last.is_file():
        saved_step = checkpoint_step(last)
    if saved_step < trainer.global_step:
        trainer.save_checkpoint(last)


def validate(cfg: ExperimentConfig, checkpoint: str) -> list[dict[str, float]]:
    """Validation loss / BLEU of a checkpoint on ``cfg``'s validation split. A corrupt checkpoint, or
    one whose model or vocabulary ``cfg`` and its data do not match, is refused naming the file."""
    check_trainer_flags(cfg.train)
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    saved = check_resume_config(cfg, checkpoint, "validate")
    dm = NMTDataModule(cfg.data)
    dm.setup("validate")
    check_resume_vocab(saved, dm.vocab, checkpoint, "validate")
    task = TranslationTask(cfg, vocab_info(dm, None))
    trainer = build_trainer(cfg)
    return trainer.validate(task, datamodule=dm, ckpt_path=checkpoint)
