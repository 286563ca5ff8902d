"""One run per output folder, nothing lost: a new run in a used folder is refused unless --overwrite,
one process at a time trains there (a lock), a resume under another subword model or from a corrupt
checkpoint is refused naming the files, Trainer flags that cannot work are refused before anything is
written, and a full disk is one line that leaves the previous checkpoint intact."""

from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from helpers.checkpoints import random_checkpoint
from helpers.synthetic import tiny_experiment
from helpers.train_toys import fit_recording

import nmt.io
from nmt.cli import main
from nmt.config import ConfigError, to_dict
from nmt.data.subwords import model_identity
from nmt.lock import FileLock, LockHeld
from nmt.train.fit import fit

SHORT = {"max_steps": 2, "val_every_steps": 2, "heatmap_sentences": 0, "save_top_k": 1}


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _yaml(cfg, path: Path) -> Path:
    path.write_text(yaml.safe_dump(to_dict(cfg)), encoding="utf-8")
    return path


def _one_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def _error_line(err: str) -> str:
    """The one ``error:`` line of a command that also logged (training)."""
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def test_a_new_run_in_a_used_folder_is_refused_unless_overwrite(make_experiment, tmp_path, capsys, caplog):
    cfg = make_experiment("used", train=SHORT)
    fit(cfg, enable_progress_bar=False)
    run = Path(cfg.train.output_dir)
    before = _files(run)
    with pytest.raises(ConfigError, match=f"train.output_dir {run} is not empty .*--ckpt_path auto.*--overwrite"):
        fit(cfg, enable_progress_bar=False)
    assert main(["fit", "--config", str(_yaml(cfg, tmp_path / "c.yaml")), "--no_progress"]) == 2
    assert f"train.output_dir {run} is not empty (checkpoints/, config.yaml" in _one_line(capsys.readouterr().err)
    assert _files(run) == before  # nothing overwritten, nothing added
    with pytest.raises(ConfigError, match="give one of them"):
        fit(cfg, "auto", overwrite=True, enable_progress_bar=False)
    fit(cfg, "auto", enable_progress_bar=False)  # resuming the folder's own run is fine
    ckpts = run / "checkpoints"
    other_run = ckpts / "step0000099-bleu99.00.ckpt"  # a file of the previous run
    other_run.write_bytes((ckpts / "last.ckpt").read_bytes())
    (run / "notes.txt").write_text("mine\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="nmt"):
        fit(cfg, overwrite=True, enable_progress_bar=False)
    assert "removed the previous run's checkpoints, tb, subword, config.yaml" in caplog.text
    assert "kept what nmt fit does not write: notes.txt" in caplog.text
    assert not other_run.exists() and (run / "notes.txt").read_text(encoding="utf-8") == "mine\n"
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", next(ckpts.glob("step0000002-*")).name]


class LockedDuringTraining(L.Callback):
    """Records the holder of ``<output_dir>/.lock`` during training."""

    def __init__(self, lock: Path) -> None:
        self.lock, self.holders = lock, []

    def on_train_batch_start(self, trainer, *args) -> None:
        self.holders.append(nmt.lock.holder(self.lock))


def test_one_process_at_a_time_trains_in_a_folder(make_experiment, capsys, caplog):
    cfg = make_experiment("locked", train=SHORT)
    run = Path(cfg.train.output_dir)
    lock = run / ".lock"
    other = FileLock(lock, "test").acquire()  # a live process (this one) holds the folder
    try:
        with pytest.raises(LockHeld, match=f"{lock}: run folder {run} is in use by process {os.getpid()}"):
            fit(cfg, enable_progress_bar=False)
        with pytest.raises(LockHeld):
            fit(cfg, "auto", enable_progress_bar=False)
        assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written
    finally:
        other.release()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(nmt.lock.json.dumps({"pid": int(dead.stdout), "host": nmt.lock.socket.gethostname(), "since": 0}))
    seen = LockedDuringTraining(lock)
    with caplog.at_level("WARNING", logger="nmt"):
        fit_recording(cfg, None, [seen])
    assert "taking over a stale lock" in caplog.text
    assert seen.holders and all(h["pid"] == os.getpid() for h in seen.holders)
    assert not lock.exists()  # released at the end


def test_resume_under_another_subword_model_of_the_same_size_is_refused(make_experiment, shifted_root, tmp_path):
    cfg = make_experiment("spm", train=SHORT)
    fit(cfg, enable_progress_bar=False)
    run = Path(cfg.train.output_dir)
    before = _files(run)
    moved = tiny_experiment(shifted_root, run, train={**SHORT, "max_steps": 4})  # data.root is not a model key
    with pytest.raises(ConfigError) as refused:
        fit(moved, "auto", enable_progress_bar=False)
    message = str(refused.value)
    assert f"cannot resume {run / 'checkpoints' / 'last.ckpt'}: its source subword model" in message
    assert str((run / "subword" / "src.model").resolve()) in message and str(shifted_root / "prepared") in message
    assert _files(run) == before  # the run's own subword model is not replaced


def test_resume_after_the_data_is_prepared_again(reverse_root, tmp_path):
    """Preparing the same data again trains a subword model with the same pieces whose file differs
    (SentencePiece records the training input's temporary path in it): resuming must go on."""
    root = tmp_path / "data"
    shutil.copytree(reverse_root / "reverse", root / "reverse")
    run = tmp_path / "run"
    fit(tiny_experiment(root, run, train=SHORT), enable_progress_bar=False)
    first = next((root / "prepared").rglob("*.model")).read_bytes()
    shutil.rmtree(root / "prepared")
    fit(tiny_experiment(root, run, train={**SHORT, "max_steps": 4}), "auto", enable_progress_bar=False)
    again = next((root / "prepared").rglob("*.model")).read_bytes()
    assert again != first and model_identity(again) == model_identity(first)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4
    assert (run / "subword" / "src.model").read_bytes() == first  # the run's own copy is kept


@pytest.mark.parametrize("damage", ["empty", "truncated", "random"])
def test_a_corrupt_last_checkpoint_is_one_line_naming_it(make_experiment, tmp_path, capsys, damage):
    cfg = make_experiment("corrupt", train=SHORT)
    good = random_checkpoint(cfg, tmp_path / "good.ckpt").read_bytes()
    last = Path(cfg.train.output_dir) / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes({"empty": b"", "truncated": good[: len(good) // 2], "random": os.urandom(4096)}[damage])
    config = _yaml(cfg, tmp_path / "c.yaml")
    assert main(["fit", "--config", str(config), "--ckpt_path", "auto", "--no_progress"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert f"{last} is not a valid checkpoint" in err and "cannot resume it; delete it and resume from another" in err
    assert main(["validate", "--config", str(config), "--checkpoint", str(last)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert f"{last} is not a valid checkpoint" in err and "cannot validate it; give an intact checkpoint" in err


def test_validate_with_a_checkpoint_of_another_model_or_vocabulary_is_one_line(
    make_experiment, shifted_root, tmp_path, capsys
):
    cfg = make_experiment("val")
    config = _yaml(cfg, tmp_path / "c.yaml")
    wider = random_checkpoint(make_experiment("val", model={"d_model": 48}), tmp_path / "wider.ckpt")
    assert main(["validate", "--config", str(config), "--checkpoint", str(wider)]) == 2
    assert f"cannot validate {wider}: the config differs in model.d_model (48 in the checkpoint, 32 now)" in _one_line(
        capsys.readouterr().err)
    shifted = random_checkpoint(tiny_experiment(shifted_root, tmp_path / "val"), tmp_path / "shifted.ckpt")
    assert main(["validate", "--config", str(config), "--checkpoint", str(shifted)]) == 2
    assert f"cannot validate {shifted}: its source subword model" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("key, value, message", [
    ("train.max_steps", "-5", "train.max_steps must be -1 (no limit) or >= 1, got -5"),
    ("train.devices", "0", "train.devices must be a number of devices >= 1"),
    ("train.precision", "fp8", "train.precision: 'fp8' is not one of 32-true"),
    ("train.strategy", "nonsense", "train.strategy = 'nonsense' cannot be used here: You selected an invalid strategy"),
    pytest.param("train.accelerator", "gpu", "train.accelerator: 'gpu' needs a GPU, and this machine has none",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
])
def test_trainer_flags_that_cannot_work_are_refused_before_anything_is_written(
    make_experiment, tmp_path, capsys, key, value, message
):
    cfg = to_dict(make_experiment("run"))
    cfg["data"]["prepared_dir"] = str(tmp_path / "prepared")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assert main(["fit", "--config", str(path), f"--{key}", value, "--no_progress"]) == 2
    assert message in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists() and not (tmp_path / "prepared").exists()


class NoRoom(io.FileIO):
    """A file on a disk with ``ROOM`` bytes free: a longer write fails as the kernel's would."""

    ROOM = 20_000

    def write(self, data):
        if self.tell() + len(memoryview(data)) > self.ROOM:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def test_a_full_disk_while_training_is_one_line_and_keeps_the_last_checkpoint(make_experiment, tmp_path, monkeypatch,
                                                                              capsys):
    cfg = make_experiment("full", train={**SHORT, "save_top_k": 0})
    fit(cfg, enable_progress_bar=False)
    last = Path(cfg.train.output_dir) / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    monkeypatch.setattr(nmt.io, "_RawFile", type("Full", (nmt.io._RawFile, NoRoom), {}))
    config = _yaml(make_experiment("full", train={**SHORT, "max_steps": 3, "save_top_k": 0}), tmp_path / "c.yaml")
    assert main(["fit", "--config", str(config), "--ckpt_path", "auto", "--no_progress"]) == 2
    err = _error_line(capsys.readouterr().err)
    assert f"error: cannot write {last}: the disk is full (no space left on device); the previous last.ckpt is unchanged" in err
    assert last.read_bytes() == before and not list(last.parent.glob("*.tmp"))
