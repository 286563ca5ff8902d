"""What a killed or interrupted run keeps: last.ckpt on a cadence and on signals, exact resume after
SIGINT/SIGTERM, a refused resume that writes nothing, no stale temp files, one checkpoint per step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers.train_toys import fit_recording

from nmt.config import ConfigError
from nmt.train.average import select
from nmt.train.fit import fit
from nmt.train.stopping import Interrupted

REPO = Path(__file__).resolve().parents[2]
DROPOUT = {"dropout": 0.1}


def _step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


class SignalAt(L.Callback):
    """Sends ``signum`` to this process just before update ``step`` (``global_step == step - 1``)."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step == self.step - 1:
            os.kill(os.getpid(), self.signum)


class CrashAt(L.Callback):
    """Raises (a crash that writes nothing) just before update ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step == self.step - 1:
            raise RuntimeError("simulated crash")


def test_sigint_and_sigterm_finish_the_update_write_last_and_resume_exactly(make_experiment):
    """Ctrl-C during update 3 and SIGTERM during update 6: each run writes last.ckpt at that update and
    exits with 128 + signum; resuming twice gives the losses of an uninterrupted run (dropout on)."""
    train = {"max_steps": 8, "val_every_steps": 3, "heatmap_sentences": 0}
    straight = fit_recording(make_experiment("straight", model=DROPOUT, train=train))
    cfg = make_experiment("stopped", model=DROPOUT, train=train)
    last = Path(cfg.train.output_dir) / "checkpoints" / "last.ckpt"
    seen: dict[int, float] = {}
    for ckpt_path, step, signum in ((None, 3, signal.SIGINT), ("last", 6, signal.SIGTERM)):
        handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        with pytest.raises(Interrupted) as stop:
            seen.update(fit_recording(cfg, ckpt_path, [SignalAt(step, signum)]))
        assert stop.value.code == 128 + signum and _step(last) == step
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # restored
    losses = fit_recording(cfg, "last")
    assert sorted(losses) == [7, 8]
    for s in range(7, 9):
        assert losses[s] == pytest.approx(straight[s], rel=1e-5, abs=1e-6), s


def test_kill_9_after_the_last_improvement_loses_at_most_one_cadence(make_experiment):
    """Validation BLEU stops entering the top 1 after the first validation, at update 4 (lr ~ 0: BLEU is
    constant); a kill -9 before update 12 still finds last.ckpt within checkpoint_every_steps = 5 updates."""
    optim = {"lr": 1e-12}
    train = {"max_steps": 1000, "val_every_steps": 4, "save_top_k": 1, "val_max_sentences": 5,
             "heatmap_sentences": 0, "checkpoint_every_steps": 5}
    cfg = make_experiment("killed", optim=optim, train=train)
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        import lightning as L
        sys.path.insert(0, {str(REPO / "tests")!r})
        from helpers.synthetic import tiny_experiment
        import nmt.train.fit as f

        class Kill(L.Callback):
            def on_train_batch_start(self, trainer, *args):
                if trainer.global_step == 11:
                    os.kill(os.getpid(), signal.SIGKILL)

        build = f.build_trainer
        def with_kill(c, **kw):
            t = build(c, **kw)
            t.callbacks.append(Kill())
            return t
        f.build_trainer = with_kill
        f.fit(tiny_experiment(Path({cfg.data.root!r}), Path({cfg.train.output_dir!r}), optim={optim!r},
                              train={train!r}), enable_progress_bar=False)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    ckpts = Path(cfg.train.output_dir) / "checkpoints"
    killed_at = _step(ckpts / "last.ckpt")
    assert 11 - 5 <= killed_at <= 11
    assert sorted(_step(p) for p in ckpts.glob("step*.ckpt")) == [4]  # the last improvement
    resumed = fit_recording(make_experiment("killed", optim=optim, train={**train, "max_steps": 12}), "auto")
    assert sorted(resumed) == list(range(killed_at + 1, 13))


def test_a_crashed_run_resumes_without_duplicates_or_temp_files(make_experiment):
    """A crash before update 7 leaves last.ckpt at update 4 (cadence) while step 6 was validated and saved;
    the resumed run validates step 6 again and replaces its file, and the temp file of an interrupted
    write is removed. ``nmt average --last 2`` then takes two different updates."""
    train = {"max_steps": 8, "val_every_steps": 3, "save_top_k": 3, "heatmap_sentences": 0,
             "checkpoint_every_steps": 4}
    cfg = make_experiment("crashed", train=train)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit_recording(cfg, None, [CrashAt(7)])
    ckpts = Path(cfg.train.output_dir) / "checkpoints"
    assert _step(ckpts / "last.ckpt") == 4
    stale = ckpts / ".last.ckpt.k3j2h1.tmp"
    stale.write_bytes(b"half a checkpoint")
    fit_recording(cfg, "auto")
    names = sorted(p.name for p in ckpts.iterdir())
    assert not stale.exists() and not [n for n in names if "-v" in n or n.endswith(".tmp")], names
    steps = sorted(_step(ckpts / n) for n in names if n.startswith("step"))
    assert steps == [3, 6], names
    assert sorted(_step(p) for p in select(str(ckpts), last=2, best=None)) == [3, 6]


def test_average_counts_a_step_saved_twice_once(tmp_path):
    nmt = {"config": {}, "vocab": {}, "val_bleu": 1.0}
    for name, step in (("step3.ckpt", 3), ("step6.ckpt", 6), ("step6-v1.ckpt", 6)):
        torch.save({"state_dict": {"model.w": torch.zeros(1)}, "nmt": nmt, "global_step": step}, tmp_path / name)
    assert sorted(_step(p) for p in select(str(tmp_path), last=2, best=None)) == [3, 6]
    with pytest.raises(ValueError, match="2 available"):
        select(str(tmp_path), last=3, best=None)


def test_resume_with_a_changed_model_is_refused_before_anything_is_written(make_experiment):
    cfg = make_experiment("refused", train={"max_steps": 2, "val_every_steps": 2, "heatmap_sentences": 0})
    fit(cfg, enable_progress_bar=False)
    run = Path(cfg.train.output_dir)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    changed = make_experiment("refused", model={"d_model": 48}, train={"max_steps": 4, "val_every_steps": 2})
    with pytest.raises(ConfigError, match=r"model\.d_model \(32 in the checkpoint, 48 now\)"):
        fit(changed, "auto", enable_progress_bar=False)
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # config.yaml still describes the checkpoints


def test_last_checkpoint_follows_the_minutes_cadence_without_validation(make_experiment):
    """With no validation before the crash and no step cadence, the time cadence alone keeps last.ckpt
    current (an interval of ~6 ms: every update)."""
    cfg = make_experiment("minutes", train={"max_steps": 8, "val_every_steps": 100, "heatmap_sentences": 0,
                                            "checkpoint_every_minutes": 1e-4})
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit_recording(cfg, None, [CrashAt(5)])
    ckpts = Path(cfg.train.output_dir) / "checkpoints"
    assert _step(ckpts / "last.ckpt") == 4 and not list(ckpts.glob("step*"))
    off = make_experiment("off", train={"max_steps": 8, "val_every_steps": 100, "checkpoint_every_minutes": 0})
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit_recording(off, None, [CrashAt(5)])
    assert not (Path(off.train.output_dir) / "checkpoints" / "last.ckpt").exists()


@pytest.mark.parametrize("key, value", [("checkpoint_every_steps", -1), ("checkpoint_every_minutes", -0.5)])
def test_negative_cadence_is_a_config_error(make_experiment, key, value):
    with pytest.raises(ConfigError, match=f"train.{key} must be >= 0"):
        make_experiment("bad", train={key: value})
