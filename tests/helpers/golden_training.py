"""Golden training probes: what a change to the training path must leave unchanged.

The model's golden outputs (``tests/helpers/golden.py``) run without dropout and without the
training loop, so they do not see a change in the loss, the optimizer or its schedule, the data
order, the order of the dropout draws or the subword model. This module trains the probe of
``scripts/check_code_versions.py`` (each stage-1 setting in a small model, 6 updates through
``nmt.train.fit`` with the campaign's base config, dropout on, a fixed synthetic corpus) in float64
and keeps, per parameter and optimizer-state tensor, its sum and sum of squares, and the validation
BLEU. ``tests/golden/training_outputs.pt`` holds them, recorded with

    .venv/bin/python tests/helpers/golden_training.py --record

and tests/integration/train/test_golden_training.py compares. Float64 keeps the comparison
independent of the CPU's vector width, AVX2 or AVX-512 (the campaign itself trains in float32, where
the script's exact digests compare commits on one machine). As for the model's golden outputs, the
parameters are initialised in float32 before the model becomes float64, and PyTorch's float32
``normal_`` rounds differently without SIMD (``ATEN_CPU_CAPABILITY=default``), so neither holds there.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
FILE = REPO / "tests" / "golden" / "training_outputs.pt"
sys.path.insert(0, str(REPO / "scripts"))

import check_code_versions as ccv  # noqa: E402


def summaries(work: Path) -> dict[str, dict[str, object]]:
    """``{setting: {"names": [...], "sums": (N, 2) sum and sum of squares of each named parameter or
    optimizer-state tensor, "val_bleu": ...}}`` of the float64 probes."""
    out: dict[str, dict[str, object]] = {}
    for name in ccv.SETTINGS:
        state = ccv.train_probe(work, REPO / ccv.BASE, name, precision="64-true")
        bleu = torch.tensor(state.pop("val_bleu"), dtype=torch.float64)
        names = sorted(state)
        sums = torch.stack([torch.stack([state[k].double().sum(), state[k].double().pow(2).sum()]) for k in names])
        out[name] = {"names": names, "sums": sums, "val_bleu": bleu}
    return out


def record() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(summaries(Path(tmp)), FILE)


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit(__doc__)
    record()
