"""The training path computes what it computed when the golden probes were recorded
(tests/helpers/golden_training.py): loss, optimizer, schedule, data order, dropout draws and subword
model, for every stage-1 setting, in float64 with a tolerance far below any change of computation
(a change of rounding alone in float32 is what scripts/check_code_versions.py tells, on one machine).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.golden_training import FILE, summaries


def test_training_probes_equal_the_golden_ones(tmp_path: Path) -> None:
    golden = torch.load(FILE, weights_only=True)
    got = summaries(tmp_path)
    assert sorted(got) == sorted(golden)
    for name, want in golden.items():
        assert got[name]["names"] == want["names"], name
        torch.testing.assert_close(got[name]["sums"], want["sums"], rtol=1e-9, atol=1e-12,
                                   msg=lambda m, name=name: f"{name}: {m}")
        assert float(got[name]["val_bleu"]) == pytest.approx(float(want["val_bleu"]), abs=1e-9), name


def test_a_changed_training_step_is_caught(tmp_path: Path, monkeypatch) -> None:
    """The comparison can fail: label smoothing 0.1 -> 0.11 (one detail of the loss) shows in the sums."""
    import check_code_versions as ccv

    original = ccv.merged

    def smoothed(base: dict, over: dict) -> dict:
        out = original(base, over)
        if "optim" in out and "label_smoothing" in out["optim"]:
            out["optim"] = {**out["optim"], "label_smoothing": 0.11}
        return out

    monkeypatch.setattr(ccv, "merged", smoothed)
    monkeypatch.setattr(ccv, "SETTINGS", {"self-0110": ccv.SETTINGS["self-0110"]})
    got = summaries(tmp_path)["self-0110"]
    want = torch.load(FILE, weights_only=True)["self-0110"]
    with pytest.raises(AssertionError):
        torch.testing.assert_close(got["sums"], want["sums"], rtol=1e-9, atol=1e-12)
