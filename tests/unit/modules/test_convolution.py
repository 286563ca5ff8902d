"""Lightweight and dynamic convolution: naive reference, unfold == band, causality, step == forward,
spec options, FLOPs, default widths."""

from __future__ import annotations

import pytest
import torch

from nmt.modules.conv_common import band_matrix, default_kernel_width
from nmt.modules.dynamic_conv import DynamicConv, DynamicOptions
from nmt.modules.lightweight_conv import LightweightConv, LightweightOptions
from nmt.modules.options import BuildContext
from nmt.modules.registry import build_mixer
from nmt.modules.spec import SpecError, parse_spec

D, H = 8, 2
CLASSES = [LightweightConv, DynamicConv]
CASES = [("encoder", 5), ("decoder", 4), ("decoder", 1), ("encoder", 1)]


OPTIONS = {LightweightConv: LightweightOptions, DynamicConv: DynamicOptions}


def conv(cls, role: str, k: int, **options):
    """``cls`` in a width-D, H-head model (H kernel heads) with options ``k`` and ``options``."""
    return cls(BuildContext(D, H, role), OPTIONS[cls](k=k, **options))


def make(cls, role: str, k: int, glu: bool = True, impl: str = "auto", seed: int = 0):
    torch.manual_seed(seed)
    return conv(cls, role, k, glu=glu, impl=impl).double().eval()


def inputs(B: int = 3, T: int = 7, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    lengths = torch.tensor([T, T - 2, 3])[:B]
    mask = torch.arange(T)[None, :] >= lengths[:, None]  # (B, T), True at padding
    return x, mask


def reference(m, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Python loops over positions, taps and channels, from the module's parameters."""
    B, T, _ = x.shape
    K, C = m.kernel_size, D // m.heads
    left = K // 2 if m.role == "encoder" else K - 1
    h = x @ m.in_proj.weight.T + m.in_proj.bias
    if m.glu:
        h = h[..., :D] * torch.sigmoid(h[..., D:])
    if mask is not None:
        h = h * (~mask)[..., None]
    y = torch.zeros(B, T, D, dtype=x.dtype)
    for b in range(B):
        for t in range(T):
            if isinstance(m, DynamicConv):
                logits = (h[b, t] @ m.kernel_proj.weight.T).view(m.heads, K)
            else:
                logits = m.weight
            w = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True)  # (H, K)
            for k in range(K):
                s = t + k - left
                if 0 <= s < T:
                    for c in range(D):
                        y[b, t, c] += w[c // C, k] * h[b, s, c]
    return y @ m.out_proj.weight.T + m.out_proj.bias


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("role,k", CASES)
@pytest.mark.parametrize("glu", [True, False])
def test_matches_reference_both_impls(cls, role, k, glu):
    x, mask = inputs()
    ref = reference(make(cls, role, k, glu), x, mask)
    real = ~mask
    for impl in ("unfold", "band"):
        y = make(cls, role, k, glu, impl=impl)(x, padding_mask=mask)
        assert torch.isfinite(y).all()
        torch.testing.assert_close(y[real], ref[real], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cls", CLASSES)
def test_auto_impl_threshold(cls):
    import nmt.modules.conv_common as cc

    m = make(cls, "encoder", 3)
    assert m.use_band(cc.BAND_MAX_LEN) and not m.use_band(cc.BAND_MAX_LEN + 1)
    assert make(cls, "encoder", 3, impl="unfold").use_band(2) is False
    assert make(cls, "encoder", 3, impl="band").use_band(10_000) is True


def test_step_refused_in_encoder():
    m = make(LightweightConv, "encoder", 3)
    with pytest.raises(RuntimeError, match="decoder"):
        m.step(torch.zeros(1, 1, D, dtype=torch.float64), None)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("role,k", [("encoder", 3), ("decoder", 3)])
def test_recorded_weights_are_the_band(cls, role, k):
    x, mask = inputs()
    m = make(cls, role, k, impl="unfold")
    m.record_weights = True
    m(x, padding_mask=mask)
    A = m.last_weights
    assert A.shape == (3, H, 7, 7)
    # rows away from the edges of the unpadded first sequence sum to 1; padded keys get 0
    torch.testing.assert_close(A[0].sum(-1)[:, k:-k], torch.ones(H, 7 - 2 * k, dtype=A.dtype))
    assert (A[mask[:, None, None, :].expand_as(A)] == 0).all()
    rows, cols = torch.meshgrid(torch.arange(7), torch.arange(7), indexing="ij")
    lo = -(k // 2) if role == "encoder" else -(k - 1)
    hi = k // 2 if role == "encoder" else 0
    outside = ((cols - rows) < lo) | ((cols - rows) > hi)
    assert (A[:, :, outside] == 0).all()


def test_band_matrix_layout():
    kernel = torch.arange(1.0, 7.0).view(1, 1, 2, 3)  # H=2, K=3: [[1,2,3],[4,5,6]]
    A = band_matrix(kernel, batch=1, length=4, left=1)
    expected_h0 = torch.tensor([[2.0, 3, 0, 0], [1, 2, 3, 0], [0, 1, 2, 3], [0, 0, 1, 2]])
    torch.testing.assert_close(A[0, 0], expected_h0)
    torch.testing.assert_close(A[0, 1], expected_h0 + 3 * (expected_h0 > 0))


def test_dropconnect_only_in_training():
    m = conv(LightweightConv, "encoder", 3, dropconnect=0.5).double()
    x, _ = inputs()
    m.eval()
    torch.testing.assert_close(m(x), m(x))
    m.train()
    torch.manual_seed(0)
    a = m(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, m(x))


# --- spec options -------------------------------------------------------------------------------


def ctx(role: str = "encoder", layer: int = 0, **kw) -> BuildContext:
    return BuildContext(d_model=16, n_heads=8, role=role, layer=layer, n_layers=6, **kw)


def build(spec: str, **kw):
    return build_mixer(parse_spec(spec), ctx(**kw))


def test_options_parsed():
    m = build("dynamic:k=7,glu=false,heads=4", dropout=0.1)
    assert isinstance(m, DynamicConv)
    assert (m.kernel_size, m.glu, m.heads, m.dropconnect, m.impl) == (7, False, 4, 0.1, "auto")
    assert m.in_proj.out_features == 16 and m.kernel_proj.out_features == 28
    m = build("lightweight:dropconnect=0.2,impl=band", role="decoder", layer=2)
    assert isinstance(m, LightweightConv)
    assert (m.kernel_size, m.glu, m.heads, m.dropconnect, m.impl) == (15, True, 8, 0.2, "band")
    assert m.in_proj.out_features == 32 and m.weight.shape == (8, 15)


@pytest.mark.parametrize(
    "spec,option",
    [
        ("dynamic:k=seven", "k"),
        ("dynamic:glu=maybe", "glu"),
        ("dynamic:heads=3", "heads"),
        ("lightweight:heads=0", "heads"),
        ("lightweight:dropconnect=1.5", "dropconnect"),
        ("lightweight:impl=fft", "impl"),
        ("dynamic:width=3", "width"),
        ("lightweight:k=0", "k"),
    ],
)
def test_bad_options_name_the_option(spec, option):
    with pytest.raises(SpecError, match=option):
        build(spec)


@pytest.mark.parametrize("name", ["lightweight", "dynamic"])
def test_cross_role_refused(name):
    with pytest.raises(SpecError, match="cross"):
        build(name, role="cross")


@pytest.mark.parametrize("name", ["lightweight", "dynamic"])
def test_even_width(name):
    with pytest.raises(SpecError, match="k=4 must be odd"):
        build(f"{name}:k=4")
    assert build(f"{name}:k=4", role="decoder").kernel_size == 4


def test_default_kernel_width_by_layer():
    assert [default_kernel_width(i) for i in range(8)] == [3, 7, 15, 31, 31, 31, 31, 31]
    assert [build("dynamic", layer=i).kernel_size for i in (0, 1, 3, 6)] == [3, 7, 31, 31]


# --- FLOPs ----------------------------------------------------------------------------------------


def test_flops_by_hand():
    # d=8, H=2, K=3, T=5, GLU: in_proj 5*(2*8*16+16)=1360, GLU 2*5*8=80, conv 2*5*8*3=240,
    # out_proj 5*(2*8*8+8)=680.
    # The band path (default for T <= 512) runs a dense (T, T) matrix per head: 2*5*5*8 = 400.
    lw = conv(LightweightConv, "encoder", 3, impl="unfold")
    assert lw.flops(5) == 1360 + 80 + 3 * 2 * 3 + 240 + 680  # softmax of the shared (2, 3) kernel: 18
    assert conv(LightweightConv, "encoder", 3).flops(5) == 1360 + 80 + 18 + 400 + 680
    dyn = conv(DynamicConv, "decoder", 3, impl="unfold")
    # kernel prediction 5*2*8*6 = 480, softmax per position 3*5*2*3 = 90
    assert dyn.flops(5) == 1360 + 80 + 480 + 90 + 240 + 680
    assert conv(DynamicConv, "decoder", 3, impl="band").flops(5) == 1360 + 80 + 480 + 90 + 400 + 680
    # without GLU: in_proj 5*(2*8*8+8) = 680, no GLU term
    assert conv(DynamicConv, "decoder", 3, glu=False, impl="unfold").flops(5) == 680 + 480 + 90 + 240 + 680
    assert dyn.flops(5, src_len=99) == dyn.flops(5)
