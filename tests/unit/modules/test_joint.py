"""Joint form "0010&deform_attn" / "0010&deform_conv": equal to the parallel sum with tied
projections, E3 with u = 0 averages uniformly, fewer parameters than the parallel sum, causality,
step == forward (with beam reorders), FLOPs by hand, spec errors."""

from __future__ import annotations

import pytest
import torch

from nmt.modules.combine import ParallelMixer
from nmt.modules.joint import JointDeformAttn, JointDeformConv
from nmt.modules.registry import BuildContext, build_mixer
from nmt.modules.spec import SpecError, parse_spec

D, H = 8, 2
DEFORM = {"deform_attn": "deform_attn:k=3", "deform_conv": "deform_conv:k=3,groups=2,modulation=on"}


def ctx(role: str) -> BuildContext:
    return BuildContext(d_model=D, n_heads=H, role=role, layer=0, n_layers=1)


def joint(role: str, kind: str, seed: int = 0):
    """A float64 joint mixer with random, non-integer offsets and a non-trivial E3 vector u."""
    torch.manual_seed(seed)
    m = build_mixer(parse_spec(f"0010&{DEFORM[kind]}"), ctx(role)).double().eval()
    deform = m.deform if kind == "deform_attn" else m.conv
    with torch.no_grad():
        deform.offsets.weight.normal_(0.0, 1.5)
        deform.offsets.bias.uniform_(-1.5, 1.5)
        m.saliency.u.normal_(0.0, 1.0)
    return m


def padded(B: int, T: int, lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    mask = torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]  # (B, T), True at padding
    return x, mask


def run(m, role: str, x, mask, mem, mem_mask):
    if role == "cross":
        return m(x, memory=mem, memory_padding_mask=mem_mask)
    return m(x, padding_mask=mask)


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


ROLES = ["encoder", "decoder", "cross"]


@pytest.mark.parametrize("kind", ["deform_attn", "deform_conv"])
@pytest.mark.parametrize("role", ROLES)
def test_joint_equals_parallel_sum_with_tied_projections(role: str, kind: str):
    """The joint form is "0010+deform" with E3's value/output projections tied to the deformable
    operator's (deform_conv: identity values, W_E as output) and one output bias."""
    m = joint(role, kind)
    par = build_mixer(parse_spec(f"0010+{DEFORM[kind]}"), ctx(role)).double().eval()
    assert isinstance(par, ParallelMixer)
    e3, deform = par.branches
    eye = torch.eye(D, dtype=torch.float64)
    with torch.no_grad():
        deform.load_state_dict((m.deform if kind == "deform_attn" else m.conv).state_dict())
        e3.k_proj.weight.copy_(m.saliency.k_proj.weight)
        if e3.k_proj.bias is not None:
            e3.k_proj.bias.zero_()
        e3.u.copy_(m.saliency.u)
        if kind == "deform_attn":
            e3.v_proj.load_state_dict(m.deform.value.state_dict())
            e3.out_proj.weight.copy_(m.deform.out.weight)
        else:
            e3.v_proj.weight.copy_(eye)
            e3.v_proj.bias.zero_()
            e3.out_proj.weight.copy_(m.e3_out.weight)
        e3.out_proj.bias.zero_()
    x, mask = padded(2, 6, [6, 4], seed=1)
    mem, mem_mask = padded(2, 7, [7, 3], seed=2)
    got, want = run(m, role, x, mask, mem, mem_mask), run(par, role, x, mask, mem, mem_mask)
    real = torch.ones_like(mask) if role == "cross" else ~mask
    torch.testing.assert_close(got[real], want[real])


@pytest.mark.parametrize("kind", ["deform_attn", "deform_conv"])
@pytest.mark.parametrize("role", ROLES)
def test_e3_with_u_zero_averages_values_uniformly(role: str, kind: str):
    m = joint(role, kind)
    with torch.no_grad():
        m.saliency.u.zero_()
    x, mask = padded(2, 6, [6, 4], seed=3)
    mem, mem_mask = padded(2, 7, [7, 3], seed=4)
    src, src_mask = (mem, mem_mask) if role == "cross" else (x, mask)
    alone = m.deform if kind == "deform_attn" else m.conv  # the deformable operator with the same weights
    e3_part = run(m, role, x, mask, mem, mem_mask) - run(alone, role, x, mask, mem, mem_mask)
    if kind == "deform_attn":
        values, out = m.deform.value(src), m.deform.out.weight
    else:
        values, out = src, m.e3_out.weight
    for b in range(2):
        n = int((~src_mask[b]).sum())
        for q in range(x.shape[1] if role != "encoder" else n):
            if role == "decoder" and mask[b, q]:
                continue
            keys = q + 1 if role == "decoder" else n  # the decoder averages its prefix
            torch.testing.assert_close(e3_part[b, q], out @ values[b, :keys].mean(0))


@pytest.mark.parametrize("kind", ["deform_attn", "deform_conv"])
def test_joint_has_fewer_parameters_than_the_parallel_sum(kind: str):
    for role in ROLES:
        j = build_mixer(parse_spec(f"0010&{DEFORM[kind]}"), ctx(role))
        par = build_mixer(parse_spec(f"0010+{DEFORM[kind]}"), ctx(role))
        alone = build_mixer(parse_spec(DEFORM[kind]), ctx(role))
        assert n_params(alone) < n_params(j) < n_params(par)
        # what is added to the deformable operator: V^C and u (and W_E for the convolution)
        added = D * D + D + (D * D if kind == "deform_conv" else 0)
        assert n_params(j) - n_params(alone) == added


def test_flops_by_hand():
    # E3 over S=5 keys, D=8, H=2: V^C 5*2*8*8=640, u·k 2*5*8=80; encoder: one softmax row per
    # head 3*2*5=30 and one weighted sum 2*5*8=80; decoder: T=5 rows, 150 and 400.
    # Adding the two mixtures: T*D = 40.
    enc_e3, dec_e3 = 640 + 80 + 30 + 80, 640 + 80 + 150 + 400
    attn = {r: build_mixer(parse_spec("deform_attn:k=3"), ctx(r)).flops(5) for r in ("encoder", "decoder")}
    assert joint("encoder", "deform_attn").flops(5) == attn["encoder"] + enc_e3 + 40
    assert joint("decoder", "deform_attn").flops(5) == attn["decoder"] + dec_e3 + 40
    conv = build_mixer(parse_spec(DEFORM["deform_conv"]), ctx("encoder")).flops(5)
    # W_E on Tq rows: 1 row (encoder) 2*8*8=128, 5 rows (decoder) 640
    assert joint("encoder", "deform_conv").flops(5) == conv + enc_e3 + 128 + 40
    assert joint("decoder", "deform_conv").flops(5) == conv + dec_e3 + 640 + 40
    # cross: the keys are the S=7 source positions; E3 is query-independent
    cross_attn = build_mixer(parse_spec("deform_attn:k=3"), ctx("cross")).flops(5, 7)
    assert joint("cross", "deform_attn").flops(5, 7) == cross_attn + 7 * 128 + 2 * 7 * 8 + 3 * 2 * 7 + 2 * 7 * 8 + 40


def test_spec_forms_and_errors():
    assert isinstance(build_mixer(parse_spec("0010&deformable"), ctx("encoder")), JointDeformAttn)
    m = build_mixer(parse_spec("deform_conv:k=5,dilation=2&0010"), ctx("decoder"))  # either order
    assert isinstance(m, JointDeformConv) and m.conv.k == 5 and m.conv.grid == [-8, -6, -4, -2, 0]
    assert str(parse_spec("0010&deform_attn:k=3")) == "0010&deform_attn:k=3"
    bad = {
        "0110&deform_attn": "combines the E3 mask '0010'",
        "0010&dynamic:k=3": "combines the E3 mask '0010'",
        "deform_attn&deform_conv": "combines the E3 mask '0010'",
        "0010:w=3&deform_attn": "takes no options",
        "0010&deform_conv:groups=3": "groups=3",
        "0010&deform_attn:heads=3": "heads=3",
    }
    for spec, needle in bad.items():
        with pytest.raises(SpecError, match=needle):
            build_mixer(parse_spec(spec), ctx("encoder"))
    for spec, needle in {"0010&deform_attn&deform_conv": "exactly two", "0010&deform_attn+1000": "mixes"}.items():
        with pytest.raises(SpecError, match=needle):
            parse_spec(spec)
