"""Sinusoidal encodings: the paper's formula, relative (negative) offsets, the cached module."""

import math

import pytest
import torch

from nmt.modules.positions import SinusoidalPositions, sinusoidal_table


def formula(pos: float, dim: int) -> list[float]:
    out = []
    for c in range(dim):
        angle = pos / 10000 ** (2 * (c // 2) / dim)
        out.append(math.sin(angle) if c % 2 == 0 else math.cos(angle))
    return out


@pytest.mark.parametrize("dim", [1, 6, 7])
def test_table_matches_formula_including_negative_offsets(dim):
    positions = torch.tensor([-5, -1, 0, 3, 40])
    table = sinusoidal_table(positions, dim, dtype=torch.float64)
    assert table.shape == (5, dim)
    expected = torch.tensor([formula(float(p), dim) for p in positions], dtype=torch.float64)
    torch.testing.assert_close(table, expected)


def test_shapes_and_dtypes():
    assert sinusoidal_table(torch.arange(6).view(2, 3), 4).shape == (2, 3, 4)
    assert sinusoidal_table(torch.arange(3), 4).dtype == torch.float32
    assert sinusoidal_table(torch.arange(3, dtype=torch.float64), 4).dtype == torch.float64
    # float positions equal integer ones
    torch.testing.assert_close(sinusoidal_table(torch.arange(3.0), 8), sinusoidal_table(torch.arange(3), 8))
    with pytest.raises(ValueError, match="dim"):
        sinusoidal_table(torch.arange(3), 0)


def test_relative_symmetry():
    """Sine channels are odd in the offset, cosine channels even."""
    t = sinusoidal_table(torch.arange(1, 9), 8)
    n = sinusoidal_table(-torch.arange(1, 9), 8)
    torch.testing.assert_close(n[:, 0::2], -t[:, 0::2])
    torch.testing.assert_close(n[:, 1::2], t[:, 1::2])


def test_cached_module_offsets_and_overflow():
    pe = SinusoidalPositions(6, max_len=8)
    full = sinusoidal_table(torch.arange(20), 6)
    torch.testing.assert_close(pe(5), full[:5])
    torch.testing.assert_close(pe(1, offset=4), full[4:5])
    torch.testing.assert_close(pe(6, offset=10), full[10:16])  # beyond the cached table
    assert "table" not in pe.state_dict()
