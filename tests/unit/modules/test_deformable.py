"""1D deformable sampling: zero offsets == fixed convolution, interpolation, offset gradients,
causality, step == forward (decoder, cross with source padding), spec options, FLOPs."""

from __future__ import annotations

import math

import pytest
import torch

from nmt.modules.deformable import Deformable, DeformableOptions, cross_reference, sampling_grid
from nmt.modules.options import BuildContext
from nmt.modules.registry import build_mixer
from nmt.modules.spec import SpecError, parse_spec

D, H = 8, 2


def make(role: str, k: int = 3, norm: str = "softmax", ratio: float | None = None, offset_scale: float = 0.0):
    """A float64 module; ``offset_scale`` > 0 gives random, non-integer offsets."""
    torch.manual_seed(0)
    m = Deformable(BuildContext(D, H, role), DeformableOptions(k=k, norm=norm, ratio=ratio)).double().eval()
    if offset_scale:
        with torch.no_grad():
            m.offsets.weight.normal_(0.0, offset_scale)
            m.offsets.bias.uniform_(-offset_scale, offset_scale)
    return m


def padded(B: int, T: int, lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    mask = torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]  # (B, T), True at padding
    return x, mask


def identity_module(role: str, delta: float, ratio: float | None = None) -> Deformable:
    """One head, one point (weight 1 after softmax), identity value/output projections, offset delta."""
    m = Deformable(BuildContext(D, H, role), DeformableOptions(heads=1, k=1, ratio=ratio)).double()
    with torch.no_grad():
        for lin in (m.value, m.out):
            lin.weight.copy_(torch.eye(D))
            lin.bias.zero_()
        m.offsets.bias.fill_(delta)
    return m


def lerp_reference(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """x (S, D) read at float positions pos (T,) by linear interpolation, zero outside."""

    def at(i: int) -> torch.Tensor:
        return x[i] if 0 <= i < x.shape[0] else torch.zeros(D, dtype=x.dtype)

    rows = []
    for p in pos.tolist():
        lo = math.floor(p)
        rows.append((1 - (p - lo)) * at(lo) + (p - lo) * at(lo + 1))
    return torch.stack(rows)


def test_grids():
    assert sampling_grid(4, causal=False) == [-2, -1, 0, 1]
    assert sampling_grid(3, causal=False) == [-1, 0, 1]
    assert sampling_grid(3, causal=True) == [-2, -1, 0]


@pytest.mark.parametrize("role", ["encoder", "decoder"])
@pytest.mark.parametrize("norm", ["softmax", "sigmoid"])
def test_zero_offsets_equal_fixed_convolution(role: str, norm: str):
    m = make(role, k=3, norm=norm)
    with torch.no_grad():  # constant point weights: a fixed kernel per head
        m.point_weights.weight.zero_()
        m.point_weights.bias.copy_(torch.tensor([0.3, -1.0, 2.0, 0.5, 0.1, -0.4]))
    logits = m.point_weights.bias.view(H, 3)
    kernel = logits.softmax(-1) if norm == "softmax" else logits.sigmoid()  # (H, K)
    x, mask = padded(2, 6, [6, 4], seed=1)
    v = (m.value(x) * (~mask)[..., None]).transpose(1, 2)  # (B, D, T)
    left = 1 if role == "encoder" else 2
    weight = kernel.repeat_interleave(D // H, 0)[:, None, :]  # (D, 1, K)
    conv = torch.nn.functional.conv1d(torch.nn.functional.pad(v, (left, 2 - left)), weight, groups=D)
    expected = m.out(conv.transpose(1, 2))
    got = m(x, padding_mask=mask)
    real = ~mask
    torch.testing.assert_close(got[real], expected[real])


@pytest.mark.parametrize("delta", [0.0, 1.0, -2.0, 0.3, -1.75, 2.5])
def test_interpolation_exact_and_linear(delta: float):
    m = identity_module("encoder", delta)
    x, _ = padded(1, 5, [5], seed=2)
    pos = torch.arange(5, dtype=torch.float64) + delta
    torch.testing.assert_close(m(x)[0], lerp_reference(x[0], pos))
    if delta == float(int(delta)):  # integer shift: an exact copy of the shifted rows
        shift = int(delta)
        for q in range(5):
            want = x[0, q + shift] if 0 <= q + shift < 5 else torch.zeros(D, dtype=x.dtype)
            assert torch.equal(m(x)[0, q], want)


def test_interpolation_linear_between_integers():
    x, _ = padded(1, 6, [6], seed=3)
    y0, y1 = identity_module("encoder", 1.0)(x), identity_module("encoder", 2.0)(x)
    for f in (0.25, 0.5, 0.9):
        torch.testing.assert_close(identity_module("encoder", 1.0 + f)(x), (1 - f) * y0 + f * y1)


def test_gradients_reach_offset_predictor():
    m = make("encoder", k=3, offset_scale=0.01)
    with torch.no_grad():
        m.offsets.bias.fill_(0.37)  # non-integer positions, away from the floor's jumps
    x, mask = padded(2, 6, [6, 5], seed=4)
    m(x, padding_mask=mask).pow(2).sum().backward()
    assert m.offsets.weight.grad.abs().sum() > 0
    assert m.offsets.bias.grad.abs().sum() > 0

    def f(bias: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(m, {"offsets.bias": bias}, (x,), {"padding_mask": mask})

    bias = torch.full((H * 3,), 0.37, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (bias,))


def test_recorded_weights_are_interpolation_times_point_weight():
    m = make("encoder", k=2, norm="softmax")
    with torch.no_grad():
        m.offsets.bias.fill_(0.25)
    m.record_weights = True
    x, _ = padded(1, 6, [6], seed=6)
    m(x)
    w = m.last_weights  # (1, H, 6, 6)
    a = m.point_weights(x).view(1, 6, H, 2).permute(0, 2, 1, 3).softmax(-1)  # (1, H, T, K)
    # grid [-1, 0] + 0.25: point 0 reads q-1 (0.75) and q (0.25); point 1 reads q (0.75), q+1 (0.25)
    q = 3
    torch.testing.assert_close(w[0, :, q, q - 1], 0.75 * a[0, :, q, 0])
    torch.testing.assert_close(w[0, :, q, q], 0.25 * a[0, :, q, 0] + 0.75 * a[0, :, q, 1])
    torch.testing.assert_close(w[0, :, q, q + 1], 0.25 * a[0, :, q, 1])
    torch.testing.assert_close(w[0, :, 1:5].sum(-1), torch.ones(H, 4, dtype=w.dtype))


def test_cross_reference_point_and_padding():
    m = identity_module("cross", 0.0, ratio=2.0)
    mem, mem_mask = padded(2, 6, [5, 3], seed=10)
    x = torch.zeros(2, 8, D, dtype=torch.float64)
    y = m(x, memory=mem, memory_padding_mask=mem_mask)
    # row 0: S=5, T_hat=round(10)=10 -> r_q = q/2; row 1: S=3, T_hat=round(6)=6 -> r_q = q/2
    for b, S in ((0, 5), (1, 3)):
        pos = torch.arange(8, dtype=torch.float64) * S / round(2.0 * S)
        torch.testing.assert_close(y[b], lerp_reference(mem[b, :S], pos))
    garbage = mem.masked_fill(mem_mask[..., None], 1e3)
    torch.testing.assert_close(m(x, memory=garbage, memory_padding_mask=mem_mask), y)


def test_spec_parsing_and_errors():
    ctx = BuildContext(d_model=D, n_heads=H, role="decoder", layer=0, n_layers=1)
    m = build_mixer(parse_spec("deformable:k=3,norm=sigmoid"), ctx)
    assert isinstance(m, Deformable) and (m.k, m.norm, m.n_heads, m.grid) == (3, "sigmoid", H, [-2, -1, 0])
    default = build_mixer(parse_spec("deformable"), ctx)
    assert (default.k, default.norm) == (4, "softmax")
    cross = build_mixer(parse_spec("deformable:ratio=1.2,heads=4"), BuildContext(D, H, "cross", 0, 1))
    assert (cross.ratio, cross.n_heads) == (1.2, 4)
    bad = {
        "deformable:k=0": "k=0",
        "deformable:k=2.5": "k=",
        "deformable:norm=relu": "norm",
        "deformable:heads=3": "heads=3",
        "deformable:foo=1": "foo",
        "deformable:ratio=2": "ratio",
    }
    for spec, needle in bad.items():
        with pytest.raises(SpecError, match=needle):
            build_mixer(parse_spec(spec), ctx)
    with pytest.raises(SpecError, match="ratio"):
        build_mixer(parse_spec("deformable:ratio=0"), BuildContext(D, H, "cross", 0, 1))


def test_flops_by_hand():
    # d=8, H=2, K=3, T=5: value 5*(2*8*8+8)=680, offsets+weights 2*5*(2*8*6+6)=1020,
    # softmax 3*5*6=90, interpolation + weighted sum 5*5*3*8=600, output 680.
    assert make("encoder", k=3).flops(5) == 680 + 1020 + 90 + 600 + 680
    assert make("decoder", k=3).flops(5) == 3070
    # cross over S=7 source positions: the value projection runs on the source, 7*136=952.
    assert make("cross", k=3).flops(5, 7) == 952 + 1020 + 90 + 600 + 680


def test_one_estimated_target_length_for_every_mechanism():
    """Deformable reference points and aligned attention offsets share T_hat, with halves rounded up:
    S=3, ratio=1.5 gives T_hat=5 (round-half-to-even would give 4)."""
    from nmt.modules.positions import estimated_target_length
    from nmt.modules.relative_offsets import centres_for_lengths

    lengths = torch.tensor([3, 5, 1, 7])
    assert estimated_target_length(lengths, 1.5).tolist() == [5, 8, 2, 11]  # 4.5, 7.5, 1.5, 10.5 up
    assert estimated_target_length(torch.tensor([0, 1]), 0.2).tolist() == [1, 1]  # at least 1
    q = torch.arange(6)
    ref = cross_reference(q, lengths, 1.5, torch.float64)[:, 0, :, 0]  # (B, T)
    t_hat = estimated_target_length(lengths, 1.5).double()
    torch.testing.assert_close(ref, q[None, :].double() * (lengths.double() / t_hat)[:, None], rtol=0, atol=0)
    centres = centres_for_lengths("aligned", 1.5, q, lengths)  # round(q * S / T_hat), halves up
    assert torch.equal(centres, (ref + 0.5).floor().long())
