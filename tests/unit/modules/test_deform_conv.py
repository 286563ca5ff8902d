"""1D deformable convolution: a naive-loop reference (fractional offsets, groups, modulation, all
roles), zero offsets == conv1d, causality, step == forward (with beam reorders), offset
gradients, FLOPs by hand, options and spec errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nmt.modules.deform_conv import DeformConv, DeformConvOptions
from nmt.modules.deformable import Deformable
from nmt.modules.registry import BuildContext, build_mixer
from nmt.modules.spec import SpecError, parse_spec

D = 8


def make(role: str, offset_scale: float = 0.0, **opts) -> DeformConv:
    """A float64 module; ``offset_scale`` > 0 gives random, non-integer offsets (and masks)."""
    torch.manual_seed(0)
    m = DeformConv(BuildContext(D, 2, role), DeformConvOptions(**opts)).double().eval()
    if offset_scale:
        with torch.no_grad():
            for lin in (m.offsets, m.modulation):
                if lin is not None:
                    lin.weight.normal_(0.0, offset_scale)
                    lin.bias.uniform_(-offset_scale, offset_scale)
    return m


def padded(B: int, T: int, lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    mask = torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]  # (B, T), True at padding
    return x, mask


def naive(m: DeformConv, x, src, src_len: list[int], refs: list[list[float]]) -> torch.Tensor:
    """y[b, q] = sum_k W_k s_k + b by explicit loops over rows, queries, points and channels."""
    B, T, _ = x.shape
    G, K = m.groups, m.k
    c = D // G
    W = m.kernel.weight.detach()  # (D, K*D)
    out = torch.zeros(B, T, D, dtype=x.dtype)
    for b in range(B):
        for q in range(T):
            z = x[b, q]
            delta = (m.offsets.weight @ z + m.offsets.bias).detach()  # (G*K,), index g*K + k
            mod = None if m.modulation is None else torch.sigmoid(m.modulation.weight @ z + m.modulation.bias)
            y = m.kernel.bias.detach().clone()
            for k in range(K):
                s = torch.zeros(D, dtype=x.dtype)
                for g in range(G):
                    p = refs[b][q] + m.grid[k] + float(delta[g * K + k])
                    if m.role == "decoder":
                        p = min(p, refs[b][q])
                    lo = math.floor(p)
                    for j, wgt in ((lo, 1 - (p - lo)), (lo + 1, p - lo)):
                        readable = 0 <= j < src_len[b] and not (m.role == "decoder" and j > q)
                        if readable:
                            s[g * c : (g + 1) * c] += wgt * src[b, j, g * c : (g + 1) * c]
                    if mod is not None:
                        s[g * c : (g + 1) * c] *= mod[g * K + k]
                y = y + W[:, k * D : (k + 1) * D] @ s
            out[b, q] = y
    return out


@pytest.mark.parametrize("role", ["encoder", "decoder"])
@pytest.mark.parametrize("opts", [dict(k=3, groups=2, modulation=True), dict(k=4, groups=1, dilation=2)])
def test_self_roles_match_naive_loops(role: str, opts: dict):
    m = make(role, offset_scale=1.5, **opts)
    x, mask = padded(2, 6, [6, 4], seed=1)
    got = m(x, padding_mask=mask)
    refs = [[float(q) for q in range(6)]] * 2
    want = naive(m, x, x, [6, 4], refs)
    real = ~mask
    torch.testing.assert_close(got[real], want[real])
    frac = (m.offsets(x) - m.offsets(x).floor()).abs()
    assert (frac > 0.05).float().mean() > 0.8  # the offsets are fractional: interpolation is exercised


def test_cross_role_matches_naive_loops():
    m = make("cross", offset_scale=1.5, k=3, groups=4, modulation=True, ratio=1.5)
    x, _ = padded(2, 5, [5, 5], seed=2)
    mem, mem_mask = padded(2, 7, [7, 3], seed=3)
    got = m(x, memory=mem, memory_padding_mask=mem_mask)
    refs = [[q * S / max(1, math.floor(1.5 * S + 0.5)) for q in range(5)] for S in (7, 3)]  # halves up: T_hat(3) = 5
    torch.testing.assert_close(got, naive(m, x, mem, [7, 3], refs))
    garbage = mem.masked_fill(mem_mask[..., None], 1e3)  # padding is never read
    torch.testing.assert_close(m(x, memory=garbage, memory_padding_mask=mem_mask), got)


@pytest.mark.parametrize("role", ["encoder", "decoder"])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("modulation", [False, True])
def test_fresh_module_is_an_ordinary_convolution(role: str, dilation: int, modulation: bool):
    """Zero-initialised offsets: exactly conv1d with weight[o, i, k] = W_k[o, i] (times 0.5 modulated)."""
    m = make(role, k=3, groups=2, dilation=dilation, modulation=modulation)
    x, _ = padded(2, 7, [7, 7], seed=4)
    weight = m.kernel.weight.view(D, 3, D).permute(0, 2, 1)  # (out, in, K)
    left = dilation * (1 if role == "encoder" else 2)
    xs = F.pad(x.transpose(1, 2), (left, 2 * dilation - left))  # (B, D, T + 2d)
    scale = 0.5 if modulation else 1.0
    want = F.conv1d(xs, weight * scale, m.kernel.bias, dilation=dilation).transpose(1, 2)
    torch.testing.assert_close(m(x), want)


def test_grids():
    assert make("encoder", k=3).grid == [-1, 0, 1]
    assert make("encoder", k=4, dilation=2).grid == [-4, -2, 0, 2]
    assert make("decoder", k=3, dilation=3).grid == [-6, -3, 0]


def test_gradients_reach_offsets_and_modulation():
    m = make("encoder", offset_scale=0.01, k=3, groups=2, modulation=True)
    x, mask = padded(2, 6, [6, 5], seed=9)
    m(x, padding_mask=mask).pow(2).sum().backward()
    assert m.offsets.weight.grad.abs().sum() > 0 and m.modulation.weight.grad.abs().sum() > 0

    def f(bias: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(m, {"offsets.bias": bias}, (x,), {"padding_mask": mask})

    bias = torch.full((6,), 0.37, dtype=torch.float64, requires_grad=True)  # away from integer jumps
    assert torch.autograd.gradcheck(f, (bias,))


def test_flops_by_hand():
    # D=8, G=2, K=3, T=5: offsets 5*(2*8*6+6)=510, interpolation 3*5*3*8=360,
    # kernel 5*(2*24*8+8)=1960.
    assert make("encoder", k=3, groups=2).flops(5) == 510 + 360 + 1960
    # modulation: predictor 510, sigmoid 3*5*6=90, mask x samples 5*3*8=120
    assert make("decoder", k=3, groups=2, modulation=True).flops(5) == 2830 + 510 + 90 + 120
    assert make("cross", k=3, groups=2).flops(5, 11) == 2830  # the source is not projected


def test_parameters():
    m = make("encoder", k=3, groups=2, modulation=True)
    # offsets and modulation 2*(8*6+6), kernel 3*8*8+8
    assert sum(p.numel() for p in m.parameters()) == 108 + 200


def test_spec_options_and_aliases():
    ctx = BuildContext(d_model=D, n_heads=2, role="decoder", layer=0, n_layers=1)
    m = build_mixer(parse_spec("deform_conv:k=4,groups=4,modulation=on,dilation=2"), ctx)
    assert isinstance(m, DeformConv) and m.opts == DeformConvOptions(k=4, groups=4, modulation=True, dilation=2)
    assert build_mixer(parse_spec("deform_conv"), ctx).opts == DeformConvOptions()
    cross = build_mixer(parse_spec("deform_conv:ratio=1.2"), BuildContext(D, 2, "cross", 0, 1))
    assert cross.opts.ratio == 1.2
    for name in ("deform_attn", "deformable"):  # deformable attention, under both names
        assert type(build_mixer(parse_spec(name), ctx)) is Deformable
    bad = {
        "deform_conv:k=0": "k=0",
        "deform_conv:k=2.5": "k=",
        "deform_conv:groups=3": "groups=3",
        "deform_conv:groups=0": "groups=0",
        "deform_conv:dilation=0": "dilation=0",
        "deform_conv:modulation=maybe": "modulation",
        "deform_conv:heads=2": "heads",
        "deform_conv:ratio=2": "ratio",
    }
    for spec, needle in bad.items():
        with pytest.raises(SpecError, match=needle):
            build_mixer(parse_spec(spec), ctx)
    with pytest.raises(SpecError, match="ratio"):
        build_mixer(parse_spec("deform_conv:ratio=0"), BuildContext(D, 2, "cross", 0, 1))
