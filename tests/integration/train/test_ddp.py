"""2-process CPU DDP fits (gloo) through real processes: the ranks agree, and a run stopped by SIGTERM
(sent to rank 0 only) resumes to the same parameters as an uninterrupted run, dropout on."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from nmt.config import to_dict

REPO = Path(__file__).resolve().parents[2]

# Runs `nmt fit` in-process with a callback that sends SIGTERM to rank 0 before update STOP_AT.
# A file, not `python -c`: Lightning starts rank 1 by running the same script again.
SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import lightning as L
    import nmt.train.fit as f
    from nmt.cli import main

    STOP_AT = int(os.environ.get("NMT_TEST_SIGTERM_AT", "0"))

    class SigtermRank0(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            if trainer.global_rank == 0 and trainer.global_step == STOP_AT - 1:
                os.kill(os.getpid(), signal.SIGTERM)

    build = f.build_trainer
    def with_signal(c, **kw):
        t = build(c, **kw)
        t.callbacks.append(SigtermRank0())
        return t
    f.build_trainer = with_signal
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.slow
def test_two_process_cpu_ddp_fit_stops_on_sigterm_and_resumes_exactly(make_experiment, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    script = tmp_path / "fit_with_sigterm.py"
    script.write_text(SCRIPT, encoding="utf-8")
    ddp = ["--no_progress", "--train.strategy", "ddp", "--train.devices", "2", "--train.accelerator", "cpu"]

    def run(name: str, max_steps: int, *extra: str, sigterm_at: int = 0) -> subprocess.CompletedProcess:
        cfg = make_experiment(name, model={"dropout": 0.1},
                              train={"max_steps": max_steps, "val_every_steps": 3, "heatmap_sentences": 0})
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(to_dict(cfg)), encoding="utf-8")
        subprocess.run([sys.executable, "-m", "nmt.cli", "prepare", "--config", str(path)],
                       check=True, capture_output=True, env=env, timeout=300)
        return subprocess.run([sys.executable, str(script), "fit", "--config", str(path), *ddp, *extra],
                              capture_output=True, text=True, timeout=600, cwd=tmp_path,
                              env={**env, "NMT_TEST_SIGTERM_AT": str(sigterm_at)})

    straight = run("straight", 8)
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert "parameters identical on 2 ranks" in straight.stderr, straight.stderr[-3000:]
    stopped = run("stopped", 8, sigterm_at=4)
    assert stopped.returncode == 128 + 15, stopped.stderr[-3000:]
    last = tmp_path / "stopped" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 4 and len(ckpt["nmt"]["rng"]["ranks"]) == 2
    assert not torch.equal(ckpt["nmt"]["rng"]["ranks"][0]["torch"], ckpt["nmt"]["rng"]["ranks"][1]["torch"])
    resumed = run("stopped", 8, "--ckpt_path", "auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "parameters identical on 2 ranks" in resumed.stderr, resumed.stderr[-3000:]
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(last, map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"] == 8
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=1e-6, atol=1e-7, msg=key)
