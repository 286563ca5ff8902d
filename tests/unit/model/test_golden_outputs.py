"""The model code computes what it computed when the golden outputs were recorded (tests/helpers/golden.py).

The reproduction campaign's runs of one stage must come from one model computation: a refactor of
nmt/model or nmt/modules lands during a stage only if every mask in every role and every stage-1
setting gives the same logits, gradients and decoding steps as recorded. Float64, tolerance 1e-9
relative: a changed computation differs by far more, float64 reordering on another CPU by far less.
"""

from __future__ import annotations

import pytest
import torch
from helpers.golden import FILE, cases, outputs

GOLDEN = torch.load(FILE, weights_only=True)
CASES = cases()


def test_every_case_is_recorded() -> None:
    assert sorted(GOLDEN) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_outputs_equal_the_golden_ones(name: str) -> None:
    got, want = outputs(CASES[name]), GOLDEN[name]
    for key in ("logits", "steps", "grads"):
        torch.testing.assert_close(got[key], want[key], rtol=1e-9, atol=1e-12, msg=lambda m: f"{name} {key}: {m}")


def test_a_changed_computation_is_caught() -> None:
    """The comparison can fail: a tiny change of one parameter's initialisation shows in the outputs."""
    from dataclasses import replace

    name = "tiny-cross-1000"
    other = outputs(replace(CASES[name], activation="gelu"))  # one function changed in the FFN
    with pytest.raises(AssertionError):
        torch.testing.assert_close(other["logits"], GOLDEN[name]["logits"], rtol=1e-9, atol=1e-12)
    nudged = GOLDEN[name]["logits"] * (1 + 1e-6)  # a relative change of 1e-6 is caught
    with pytest.raises(AssertionError):
        torch.testing.assert_close(nudged, GOLDEN[name]["logits"], rtol=1e-9, atol=1e-12)
