"""Salient-position attention: naive reference, selection (no padding, exactly n keys), causality,
step == forward (decoder prefix selection, cross with source padding), spec options, FLOPs."""

from __future__ import annotations

import math

import pytest
import torch

from nmt.modules.options import BuildContext
from nmt.modules.registry import build_mixer
from nmt.modules.salient import Salient, SalientOptions, budget
from nmt.modules.spec import SpecError, parse_spec

D, H = 8, 2


def make(role: str, k: int | None = None, frac: float | None = None) -> Salient:
    torch.manual_seed(0)
    return Salient(BuildContext(D, H, role), SalientOptions(k=k, frac=frac)).double().eval()


def padded(B: int, T: int, lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    mask = torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]  # (B, T), True at padding
    return x, mask


@torch.no_grad()
def reference(m: Salient, x, mask, memory=None, memory_mask=None) -> torch.Tensor:
    """Loops over rows, heads and queries: pick the keys by sorted saliency, then plain attention."""
    src, src_mask = (memory, memory_mask) if m.role == "cross" else (x, mask)
    B, T, _ = x.shape
    dh = D // H
    q = (x @ m.q_proj.weight.T + m.q_proj.bias).view(B, T, H, dh)
    k = (src @ m.k_proj.weight.T + m.k_proj.bias).view(B, -1, H, dh)
    v = (src @ m.v_proj.weight.T + m.v_proj.bias).view(B, -1, H, dh)
    y = torch.zeros(B, T, H, dh, dtype=x.dtype)
    for b in range(B):
        real = [j for j in range(src.shape[1]) if not src_mask[b, j]]
        for h in range(H):
            for t in range(T):
                cand = [j for j in real if j <= t] if m.role == "decoder" else real
                n = min(m.k, len(cand)) if m.k else min(len(cand), max(1, math.ceil(m.frac * len(cand))))
                keys = sorted(cand, key=lambda j: (-float(k[b, j, h].pow(2).sum()), j))[:n]
                if not keys:
                    continue
                logits = torch.stack([q[b, t, h] @ k[b, j, h] for j in keys]) / math.sqrt(dh)
                p = logits.softmax(0)
                y[b, t, h] = sum(p[i] * v[b, j, h] for i, j in enumerate(keys))
    return m.out(y.reshape(B, T, D))


@pytest.mark.parametrize("role", ["encoder", "decoder", "cross"])
@pytest.mark.parametrize("opts", [{"k": 3}, {"frac": 0.4}])
def test_matches_reference(role: str, opts: dict):
    m = make(role, **opts)
    x, mask = padded(3, 6, [6, 4, 2], seed=1)
    mem, mem_mask = padded(3, 7, [7, 2, 5], seed=2)
    if role != "decoder":
        x[1, 4:] = 1e3  # garbage at padding must not matter
    got = m(x, padding_mask=mask, memory=mem, memory_padding_mask=mem_mask)
    real = ~mask
    torch.testing.assert_close(got[real], reference(m, x, mask, mem, mem_mask)[real])


@pytest.mark.parametrize("role", ["encoder", "cross"])
def test_selection_counts_and_never_padding(role: str):
    m = make(role, k=3)
    m.record_weights = True
    x, _ = padded(3, 5, [5, 5, 5], seed=3)
    mem, mem_mask = padded(3, 6, [6, 2, 4], seed=4)
    src_mask = mem_mask if role == "cross" else torch.arange(5)[None, :] >= torch.tensor([5, 2, 4])[:, None]
    m(x, padding_mask=None if role == "cross" else src_mask, memory=mem, memory_padding_mask=mem_mask)
    w = m.last_weights  # (B, H, T, S)
    lengths = (~src_mask).sum(1)
    for b in range(3):
        rows = w[b] if role == "cross" else w[b, :, : int(lengths[b])]  # real queries only
        nonzero = (rows != 0).sum(-1)
        assert torch.all(nonzero == min(3, int(lengths[b])))
        assert torch.all(rows[..., src_mask[b]] == 0)
        # every query of a head reads the same salient keys
        assert torch.all((rows != 0) == (rows[:, :1] != 0))
    torch.testing.assert_close(w[0].sum(-1), torch.ones(H, 5, dtype=w.dtype))


def test_selected_keys_are_the_largest_norms():
    m = make("encoder", k=2)
    m.record_weights = True
    x, _ = padded(1, 6, [6], seed=5)
    m(x)
    keys = m.k_proj(x).view(1, 6, H, D // H).transpose(1, 2)  # (1, H, S, d_head)
    top = keys.pow(2).sum(-1).topk(2, -1).indices  # (1, H, 2)
    for h in range(H):
        chosen = (m.last_weights[0, h, 0] != 0).nonzero().flatten()
        assert set(chosen.tolist()) == set(top[0, h].tolist())


def test_budget():
    lengths = torch.tensor([0, 1, 2, 5, 10])
    assert budget(lengths, 3, None).tolist() == [0, 1, 2, 3, 3]
    assert budget(lengths, None, 0.25).tolist() == [0, 1, 1, 2, 3]


def test_decoder_is_causal_and_prefix_only():
    m = make("decoder", k=2)
    m.record_weights = True
    x, _ = padded(2, 7, [7, 7], seed=6)
    y = m(x)
    w = m.last_weights  # (B, H, T, T)
    assert torch.all(w.triu(1) == 0)
    assert torch.all((w != 0).sum(-1) == torch.clamp(torch.arange(1, 8), max=2))
    for t0 in range(1, 7):
        x2 = x.clone()
        x2[:, t0:] = torch.randn_like(x2[:, t0:]) * 10
        torch.testing.assert_close(m(x2)[:, :t0], y[:, :t0])


def test_encoder_has_no_step():
    with pytest.raises(NotImplementedError):
        make("encoder", k=2).step(torch.zeros(1, 1, D, dtype=torch.float64), None)


def test_spec_parsing_and_errors():
    ctx = BuildContext(d_model=D, n_heads=H, role="encoder", layer=0, n_layers=1)
    m = build_mixer(parse_spec("salient:k=3"), ctx)
    assert isinstance(m, Salient) and (m.k, m.frac, m.n_heads) == (3, None, H)
    m = build_mixer(parse_spec("salient:frac=0.25,heads=4"), ctx)
    assert (m.k, m.frac, m.n_heads) == (None, 0.25, 4)
    default = build_mixer(parse_spec("salient"), BuildContext(D, H, "decoder", 0, 1))
    assert (default.k, default.frac) == (None, 0.5)
    bad = {
        "salient:k=2,frac=0.5": "not both",
        "salient:k=0": "k=0",
        "salient:k=1.5": "k=",
        "salient:frac=0": "frac",
        "salient:frac=1.5": "frac",
        "salient:heads=3": "heads=3",
        "salient:topk=2": "topk",
    }
    for spec, needle in bad.items():
        with pytest.raises(SpecError, match=needle):
            build_mixer(parse_spec(spec), ctx)


def test_flops_by_hand():
    # d=8, H=2, k=3, T=S=5. Projections: q, out on T and k, v on S: 4*5*(2*64+8)=2720, query
    # scaling 5*8=40; key norms 2*5*8=80; sort 2*5*ceil(log2 5)=30;
    # attention per query over 3 keys: logits + weighted sum 4*3*8=96, softmax 3*3*2=18 -> 5*114.
    assert make("encoder", k=3).flops(5) == 2720 + 40 + 80 + 30 + 5 * 114
    # decoder: pairwise ranks 2*5*5=50; the prefix matrix is computed densely and masked:
    # 5 queries x 5 keys x (32 + 6), although they keep only 1, 2, 3, 3, 3 keys.
    assert make("decoder", k=3).flops(5) == 2720 + 40 + 80 + 50 + 25 * 38
    # cross, T=5 queries over S=7 keys (k, v and norms on S): sort 2*7*3=42.
    proj = 2 * 5 * 136 + 2 * 7 * 136 + 40
    assert make("cross", k=3).flops(5, 7) == proj + 2 * 7 * 8 + 42 + 5 * 114
    # frac=0.5 of S=7 -> ceil(3.5)=4 keys per query.
    assert make("cross", frac=0.5).flops(5, 7) == proj + 112 + 42 + 5 * (4 * 4 * 8 + 3 * 4 * 2)
