"""Builds the Lightning Trainer for an experiment and runs fit / validate."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from nmt.checkpoint import global_step as checkpoint_step
from nmt.data.datamodule import NMTDataModule
from nmt.experiment import ExperimentConfig, save_config
from nmt.io import atomic_write_bytes
from nmt.train.checkpoint_io import AtomicCheckpointIO
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


def vocab_info(dm: NMTDataModule, run_dir: str | Path) -> dict[str, Any]:
    """Plain-data description of the vocabulary, stored in checkpoints. The subword models are
    copied into ``run_dir/subword/`` so that a run directory translates on its own."""
    v = dm.vocab
    sub = Path(run_dir) / "subword"
    sub.mkdir(parents=True, exist_ok=True)
    paths = {}
    for side, src in (("src", v.src_model_path), ("tgt", v.tgt_model_path)):
        dst = sub / f"{side}.model"
        data = Path(src).read_bytes()
        if not dst.is_file() or dst.read_bytes() != data:
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


def fit(
    cfg: ExperimentConfig, ckpt_path: str | None = None, *, enable_progress_bar: bool = True,
    extra_callbacks: Sequence[L.Callback] = (),
) -> L.Trainer:
    """Train per ``cfg``; ``ckpt_path`` = None | "last" | "auto" | a checkpoint path (resume);
    ``extra_callbacks`` join the Trainer's own.

    A resume under a config that changes the model or the vocabulary is refused before anything
    is written. On SIGTERM/SIGINT, raises ``Interrupted`` (a ``SystemExit`` with status
    128 + signal number) once last.ckpt holds the last finished update.
    """
    resume = resolve_resume(cfg, ckpt_path)
    saved_vocab = check_resume_config(cfg, resume) if resume else None
    if cfg.train.num_threads > 0:
        torch.set_num_threads(cfg.train.num_threads)
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    dm = NMTDataModule(cfg.data)
    dm.setup("fit")  # prepares what is not cached; Lightning's prepare_data later logs the summary
    if resume and saved_vocab:
        v = dm.vocab
        current = {"pad_id": v.pad_id, "bos_id": v.bos_id, "eos_id": v.eos_id, "unk_id": v.unk_id,
                   "src_size": v.src_size, "tgt_size": v.tgt_size}
        check_resume_vocab(saved_vocab, current, resume)
    remove_stale_temp_files(last_checkpoint(cfg).parent)
    task = TranslationTask(cfg, vocab_info(dm, cfg.train.output_dir))
    log.info("model: %d parameters", task.model.num_parameters())
    if cfg.train.compile:
        t0 = time.perf_counter()
        task.model.compile()  # in place: parameter names (and checkpoints) are unchanged
        log.info("torch.compile wrapped the model in %.1fs (compilation happens on the first steps)", time.perf_counter() - t0)
    save_config(cfg, Path(cfg.train.output_dir) / "config.yaml")
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
    """Validation loss / BLEU of a checkpoint on ``cfg``'s validation split."""
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    dm = NMTDataModule(cfg.data)
    dm.setup("validate")
    task = TranslationTask(cfg, vocab_info(dm, cfg.train.output_dir))
    trainer = build_trainer(cfg)
    return trainer.validate(task, datamodule=dm, ckpt_path=checkpoint)
