"""A 2-process CPU DDP fit (gloo) through the command line: it finishes and the ranks agree."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from nmt.config import to_dict


@pytest.mark.slow
def test_two_process_cpu_ddp_fit(make_experiment, tmp_path):
    cfg = make_experiment("ddp", train={"max_steps": 6, "val_every_steps": 3, "heatmap_sentences": 0})
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)), encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "nmt.cli", "prepare", "--config", str(path)]
    subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=300)
    cmd = [sys.executable, "-m", "nmt.cli", "fit", "--config", str(path), "--no_progress",
           "--train.strategy", "ddp", "--train.devices", "2", "--train.accelerator", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "parameters identical on 2 ranks" in proc.stderr, proc.stderr[-3000:]
    assert (tmp_path / "ddp" / "checkpoints" / "last.ckpt").is_file()
