"""A run's training segments: one per process that trained it, closed when the process stopped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nmt.ablate.runner import _open_segment, segments_summary
from nmt.provenance import hardware

pytestmark = pytest.mark.unit


def test_a_resumed_run_closes_the_killed_segment_at_its_last_checkpoint_and_opens_one_with_the_hardware(
        tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_bytes(b"x")
    os.utime(last, (1_000_250.0, 1_000_250.0))
    killed = [{"code": "aaa", "started": 1_000_000.0, "seconds": None}]  # from before hardware was kept
    (tmp_path / "segments.json").write_text(json.dumps(killed), encoding="utf-8")

    segments = _open_segment(tmp_path)

    assert segments[0]["seconds"] == pytest.approx(250.0) and segments[0]["closed_at_last_checkpoint"]
    assert segments[1]["hardware"] == hardware() and segments[1]["seconds"] is None
    assert json.loads((tmp_path / "segments.json").read_text(encoding="utf-8")) == segments


def test_the_summary_names_each_code_version_and_processor_once_in_order() -> None:
    segments = [{"code": "aaa", "started": 0.0, "seconds": 250.0},
                {"code": "bbb", "hardware": "CPU A, AVX2", "started": 300.0, "seconds": 100.0},
                {"code": "bbb", "hardware": "CPU B, AVX512", "started": 500.0, "seconds": 50.5},
                {"code": "aaa", "hardware": "CPU A, AVX2", "started": 600.0, "seconds": 1.0}]
    assert segments_summary(segments) == {
        "code_versions": ["aaa", "bbb"], "hardware": ["not recorded", "CPU A, AVX2", "CPU B, AVX512"],
        "train_seconds_total": 401.5}
