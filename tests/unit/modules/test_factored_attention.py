"""Factored attention (E1-E4): naive references, parameters, causality, step == forward, offsets,
windows, gradients, FLOPs and spec errors."""

import copy
import math
from fractions import Fraction
from itertools import product

import pytest
import torch
from torch import nn

import nmt.modules.factored_attention as fa
import nmt.modules.factored_terms as factored_terms
from nmt.modules.factored_attention import FactoredAttention
from nmt.modules.options import BuildContext
from nmt.modules.registry import build_mixer
from nmt.modules.spec import SpecError, parse_spec

MASKS = ["".join(bits) for bits in product("01", repeat=4) if "1" in bits]
D, H = 8, 2


def make(mask: str, role: str, **kw) -> FactoredAttention:
    """A float64 module in eval mode with all parameters random (so every term matters)."""
    torch.manual_seed(0)
    att = FactoredAttention(D, H, role, mask, **kw).double().eval()
    with torch.no_grad():
        for p in att.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return att


def inputs(T=5, S=4, B=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    memory = torch.randn(B, S, D, generator=g, dtype=torch.float64)
    return x, memory


def pad_mask(lengths, size):
    return torch.arange(size)[None, :] >= torch.tensor(lengths)[:, None]  # (B, size), True = pad


def round_half_up(f: Fraction) -> int:
    return math.floor(f + Fraction(1, 2))


def centre(att, q, true_src_len):
    if att.offset == "plain":
        return q
    t_hat = max(1, round_half_up(Fraction(att.ratio).limit_denominator() * true_src_len))
    return round_half_up(Fraction(q * true_src_len, t_hat))


def sinusoid(offset: int, dim: int) -> list[float]:
    return [
        (math.sin if c % 2 == 0 else math.cos)(offset / 10000 ** (2 * (c // 2) / dim)) for c in range(dim)
    ]


def reference(att, x, memory=None, key_pad=None):
    """Naive attention: R_{k-q} built per pair, a (B, T, S, H, dh) tensor, masks looped per pair.

    Returns (output (B, T, D), weights (B, H, T, S)); rows without a valid key output 0.
    """
    B, T, _ = x.shape
    src = memory if att.role == "cross" else x
    S = src.size(1)
    dh = att.d_head
    lengths = [S] * B if key_pad is None else (~key_pad).sum(-1).tolist()
    R = torch.zeros(B, T, S, D, dtype=x.dtype)
    allowed = torch.zeros(B, T, S, dtype=torch.bool)
    for b, q, k in product(range(B), range(T), range(S)):
        off = k - centre(att, q, lengths[b])
        R[b, q, k] = torch.tensor(sinusoid(off, D), dtype=torch.float64)
        ok = key_pad is None or not key_pad[b, k]
        ok = ok and not (att.role == "decoder" and k > q)
        ok = ok and (att.window is None or abs(off) <= att.window)
        allowed[b, q, k] = ok
    logits = torch.zeros(B, H, T, S, dtype=x.dtype)
    if att.q_proj is not None:
        q_ = att.q_proj(x).view(B, T, H, dh)
    if att.k_proj is not None:
        k_ = att.k_proj(src).view(B, S, H, dh)
    if att.r_proj is not None:
        r_ = att.r_proj(R).view(B, T, S, H, dh)
    if att.e1:
        logits += torch.einsum("bqhd,bkhd->bhqk", q_, k_)
    if att.e2:
        logits += torch.einsum("bqhd,bqkhd->bhqk", q_, r_)
    if att.e3:
        logits += torch.einsum("hd,bkhd->bhk", att.u, k_)[:, :, None, :]
    if att.e4:
        logits += torch.einsum("hd,bqkhd->bhqk", att.v, r_)
    logits = (logits / math.sqrt(dh)).masked_fill(~allowed[:, None], float("-inf"))
    has_key = allowed.any(-1)  # (B, T)
    weights = torch.nan_to_num(logits.softmax(-1), nan=0.0)
    values = att.v_proj(src).view(B, S, H, dh)
    ctx = torch.einsum("bhqk,bkhd->bqhd", weights, values).reshape(B, T, D)
    return att.out_proj(ctx) * has_key[..., None], weights


def run_forward(att, x, memory, key_pad):
    if att.role == "cross":
        return att(x, memory=memory, memory_padding_mask=key_pad)
    return att(x, padding_mask=key_pad)


def check_against_reference(att, T=5, S=4, lengths=None):
    x, memory = inputs(T, S)
    src_len = S if att.role == "cross" else T
    key_pad = pad_mask(lengths or [src_len, src_len - 2], src_len)
    expected, weights = reference(att, x, memory, key_pad)
    for record in (False, True):  # SDPA path, then the explicit path that records weights
        att.record_weights = record
        y = run_forward(att, x, memory, key_pad)
        torch.testing.assert_close(y, expected, atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(att.last_weights, weights, atol=1e-10, rtol=1e-8)


# --------------------------------------------------------------------------------------------------
# Correctness against references


@pytest.mark.parametrize("qk_bias", [False, True])
@pytest.mark.parametrize("role", ["encoder", "decoder", "cross"])
def test_1000_matches_torch_multihead_attention(role, qk_bias):
    """Bias-free "1000" is MultiheadAttention with zero query/key biases; ``qk_bias`` is the biased layer."""
    torch.manual_seed(0)
    att = FactoredAttention(D, H, role, "1000", qk_bias=qk_bias).eval()
    mha = nn.MultiheadAttention(D, H, batch_first=True).eval()
    with torch.no_grad():
        if qk_bias:
            nn.init.normal_(att.q_proj.bias)
            nn.init.normal_(att.k_proj.bias)
            qk = [att.q_proj.bias, att.k_proj.bias]
        else:
            qk = [torch.zeros(D), torch.zeros(D)]
        mha.in_proj_weight.copy_(torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight]))
        mha.in_proj_bias.copy_(torch.cat([*qk, att.v_proj.bias]))
        mha.out_proj.weight.copy_(att.out_proj.weight)
        mha.out_proj.bias.copy_(att.out_proj.bias)
    x, memory = (t.float() for t in inputs(T=6, S=4))
    src = memory if role == "cross" else x
    key_pad = pad_mask([src.size(1), src.size(1) - 2], src.size(1))
    causal = torch.ones(6, 6, dtype=torch.bool).triu(1) if role == "decoder" else None
    expected, _ = mha(x, src, src, key_padding_mask=key_pad, attn_mask=causal, need_weights=False)
    y = run_forward(att, x, memory, key_pad)
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("role", ["encoder", "decoder", "cross"])
@pytest.mark.parametrize("mask", MASKS)
def test_every_mask_matches_naive_reference(mask, role):
    check_against_reference(make(mask, role))


@pytest.mark.parametrize("mask", ["1000", "0100", "0010", "0001", "1111", "0110"])
@pytest.mark.parametrize(
    "role,kw",
    [
        ("encoder", {"window": 1}),
        ("decoder", {"window": 2}),
        ("cross", {"window": 1}),
        ("cross", {"offset": "aligned"}),
        ("cross", {"offset": "aligned", "ratio": 1.5, "window": 1}),
    ],
)
def test_window_and_aligned_match_naive_reference(mask, role, kw):
    # cross with plain window 1 and T=6 > S: late queries have no valid key (output 0)
    check_against_reference(make(mask, role, **kw), T=6, S=4, lengths=None)


# --------------------------------------------------------------------------------------------------
# Parameters and compute of disabled terms


@pytest.mark.parametrize("mask", MASKS)
def test_disabled_terms_have_no_parameters(mask):
    att = FactoredAttention(D, H, "encoder", mask)
    e1, e2, e3, e4 = bits = [c == "1" for c in mask]
    expected = {"v_proj.weight", "v_proj.bias", "out_proj.weight", "out_proj.bias"}
    if e1 or e2:
        expected |= {"q_proj.weight"}
    if e1 or e3:
        expected |= {"k_proj.weight"}
    if e2 or e4:
        expected |= {"r_proj.weight"}
    if e3:
        expected.add("u")
    if e4:
        expected.add("v")
    assert {n for n, _ in att.named_parameters()} == expected
    n_linear = D * D + D
    count = 2 * n_linear + (bits[0] or bits[1]) * D * D + (bits[0] or bits[2]) * D * D
    count += (bits[1] or bits[3]) * D * D + (bits[2] + bits[3]) * D
    assert sum(p.numel() for p in att.parameters()) == count


@pytest.mark.parametrize("mask", MASKS)
def test_disabled_terms_are_not_computed(mask, monkeypatch):
    calls = {"sdpa": 0, "sinusoid": 0}
    real_sdpa, real_table = torch.nn.functional.scaled_dot_product_attention, factored_terms.sinusoidal_table

    def sdpa(*a, **k):
        calls["sdpa"] += 1
        return real_sdpa(*a, **k)

    def table(*a, **k):
        calls["sinusoid"] += 1
        return real_table(*a, **k)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", sdpa)
    monkeypatch.setattr(factored_terms, "sinusoidal_table", table)
    att = make(mask, "decoder")
    att(inputs()[0])
    assert calls["sdpa"] == (1 if mask[0] == "1" else 0)  # E1 (+E3 merged) goes through SDPA
    assert calls["sinusoid"] == (1 if mask[1] == "1" or mask[3] == "1" else 0)


def test_query_independent_e3_is_computed_once_per_sentence():
    att = make("0010", "encoder")
    assert att.query_independent and not make("0010", "decoder").query_independent
    x, _ = inputs()
    y = att(x, padding_mask=pad_mask([5, 3], 5))
    torch.testing.assert_close(y, y[:, :1].expand_as(y))


# --------------------------------------------------------------------------------------------------
# Causality and incremental decoding


@pytest.mark.parametrize("mask", ["1000", "1010", "1111", "0010"])
@pytest.mark.parametrize("role", ["decoder", "cross"])
def test_decoding_steps_record_the_weights_forward_records(mask, role):
    att = make(mask, role)
    att.record_weights = True
    x, memory = inputs(T=4, S=5)
    key_pad = pad_mask([5, 3], 5) if role == "cross" else None
    att(x, memory=memory, memory_padding_mask=key_pad)
    full = att.last_weights  # (B, H, T, S)
    state = None
    for t in range(x.size(1)):
        _, state = att.step(x[:, t : t + 1], state, memory=memory, memory_padding_mask=key_pad)
        S = full.size(-1) if role == "cross" else t + 1
        torch.testing.assert_close(att.last_weights[:, :, 0], full[:, :, t, :S], atol=1e-10, rtol=1e-8)


def decode(att, x, memory=None, key_pad=None):
    """Step through ``x`` (B, T, D) position by position -> (B, T, D). (Step against forward, causality,
    beam reorders: the contract suite, tests/unit/modules/test_contract.py.)"""
    state, outs = None, []
    for t in range(x.size(1)):
        y, state = att.step(x[:, t : t + 1], state, memory=memory, memory_padding_mask=key_pad)
        assert state.t == t + 1
        outs.append(y)
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("mask", ["1000", "0110", "1111"])
def test_cross_steps_without_window_find_the_allowed_keys_once(mask, monkeypatch):
    calls = []
    real = fa.rel.allowed_pairs
    monkeypatch.setattr(fa.rel, "allowed_pairs", lambda *a: calls.append(a) or real(*a))
    att = make(mask, "cross")
    x, memory = inputs(T=6, S=5)
    key_pad = pad_mask([5, 3], 5)
    steps = decode(att, x, memory, key_pad)
    assert len(calls) == 1  # the first step; the padding is the same at every later one
    torch.testing.assert_close(steps, att(x, memory=memory, memory_padding_mask=key_pad), atol=1e-10, rtol=1e-8)


SELF_CASES = [("encoder", {}), ("encoder", {"qk_bias": True}), ("decoder", {}), ("decoder", {"window": 2})]


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("role,kw", SELF_CASES)
def test_merged_self_projections_compute_the_same(mask, role, kw):
    att = make(mask, role, **kw)
    merged = copy.deepcopy(att)
    parts = sum(m is not None for m in (att.q_proj, att.k_proj, att.v_proj))
    rng = torch.get_rng_state()
    assert merged.fuse_projections() == (parts - 1 if parts > 1 else 0)
    assert torch.equal(torch.get_rng_state(), rng)  # merging draws no random numbers
    assert merged.fuse_projections() == 0  # once
    if parts > 1:
        assert merged.q_proj is None and merged.k_proj is None and merged.v_proj is None
    x, _ = inputs(T=6)
    key_pad = pad_mask([6, 4], 6)
    for terms in [None, *(["0110", "0000"] if mask == "1111" else [])]:  # also a subset of the terms
        att.use_terms(terms)
        merged.use_terms(terms)
        torch.testing.assert_close(merged(x, padding_mask=key_pad), att(x, padding_mask=key_pad), atol=1e-12, rtol=0)
        (a, ok_a), (b, ok_b) = att.term_logits(x, padding_mask=key_pad), merged.term_logits(x, padding_mask=key_pad)
        assert a.keys() == b.keys() and torch.equal(ok_a, ok_b)
        for name in a:
            torch.testing.assert_close(b[name], a[name], atol=1e-12, rtol=0)
        if role == "decoder":
            torch.testing.assert_close(decode(merged, x), decode(att, x), atol=1e-12, rtol=0)


@pytest.mark.parametrize("mask", ["1000", "1111"])
def test_cross_attention_merges_nothing(mask):
    att = make(mask, "cross")
    assert att.fuse_projections() == 0 and att.qkv_proj is None and att.v_proj is not None


def test_encoder_has_no_step():
    with pytest.raises(RuntimeError, match="encoder"):
        make("1000", "encoder").step(inputs()[0][:, :1], None)


# --------------------------------------------------------------------------------------------------
# Offsets and windows


def test_aligned_centres_use_true_source_length_and_estimated_target_length():
    att = FactoredAttention(D, H, "cross", "0001", offset="aligned", ratio=1.5)
    q = torch.arange(6)
    key_pad = pad_mask([4, 2], 4)
    # S=4: T_hat = 6, c = round(q * 4/6); S=2: T_hat = 3, c = round(q * 2/3)
    assert att.centres(q, key_pad, 4).tolist() == [[0, 1, 1, 2, 3, 3], [0, 1, 1, 2, 3, 3]]
    att.ratio = 2.0  # S=4: T_hat=8, c = round(q/2) half-up; S=2: T_hat=4, same
    assert att.centres(q, key_pad, 4).tolist() == [[0, 1, 1, 2, 2, 3]] * 2
    att.ratio = 1.0
    assert att.centres(q, pad_mask([4, 1], 4), 4).tolist() == [[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]]
    assert att.centres(q, None, 3).tolist() == [[0, 1, 2, 3, 4, 5]]
    plain = FactoredAttention(D, H, "cross", "0001")
    assert plain.centres(q, key_pad, 4).tolist() == [[0, 1, 2, 3, 4, 5]]


def test_aligned_differs_from_plain():
    x, memory = inputs(T=6, S=4)
    key_pad = pad_mask([4, 2], 4)
    plain = make("0001", "cross")(x, memory=memory, memory_padding_mask=key_pad)
    aligned = make("0001", "cross", offset="aligned", ratio=1.5)(
        x, memory=memory, memory_padding_mask=key_pad
    )
    assert not torch.allclose(plain, aligned)


@pytest.mark.parametrize(
    "role,kw,lengths",
    [
        ("encoder", {"window": 1}, [6, 4]),
        ("decoder", {"window": 2}, [6, 6]),
        ("cross", {"window": 0}, [4, 3]),
        ("cross", {"window": 1, "offset": "aligned", "ratio": 1.5}, [4, 2]),
    ],
)
def test_window_masks_exactly_the_keys_outside_it(role, kw, lengths):
    att = make("1111", role, **kw)
    att.record_weights = True
    x, memory = inputs(T=6, S=4 if role == "cross" else 6)
    src_len = memory.size(1) if role == "cross" else 6
    key_pad = pad_mask(lengths, src_len)
    y = run_forward(att, x, memory, key_pad)
    w = att.last_weights  # (B, H, T, S)
    assert torch.isfinite(y).all()
    for b, q, k in product(range(2), range(6), range(src_len)):
        off = k - centre(att, q, lengths[b])
        inside = abs(off) <= kw["window"] and k < lengths[b] and not (role == "decoder" and k > q)
        assert bool((w[b, :, q, k] > 0).all()) == inside, (b, q, k)
        if not inside:
            assert bool((w[b, :, q, k] == 0).all())


def test_queries_without_keys_output_zero_and_keep_gradients_finite():
    att = make("1111", "cross", window=0)
    x, memory = inputs(T=6, S=4)
    x.requires_grad_(True)
    y = att(x, memory=memory, memory_padding_mask=pad_mask([4, 2], 4))
    assert torch.equal(y[0, 4:], torch.zeros_like(y[0, 4:]))  # q >= 4 > S - 1 + w
    assert torch.equal(y[1, 2:], torch.zeros_like(y[1, 2:]))
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


# --------------------------------------------------------------------------------------------------
# Gradients, FLOPs, spec


@pytest.mark.parametrize("role,kw", [("decoder", {"window": 2}), ("cross", {"offset": "aligned"})])
def test_gradcheck_1111(role, kw):
    att = make("1111", role, **kw)
    x, memory = inputs(T=3, S=3)
    key_pad = pad_mask([3, 2], 3) if role == "cross" else None
    x.requires_grad_(True)
    memory.requires_grad_(True)
    fn = lambda x, m: run_forward(att, x, m, key_pad)
    assert torch.autograd.gradcheck(fn, (x, memory), eps=1e-6, atol=1e-5)


def test_flops_hand_count():
    # encoder "1111", D=4, H=2, T=S=3, offsets -2..2 (L=5)
    att = FactoredAttention(4, 2, "encoder", "1111")
    lin = 3 * (2 * 4 * 4 + 4)  # one Linear over 3 rows = 108
    lin_nobias = 3 * 2 * 4 * 4  # q, k projections are bias-free = 96
    expected = (
        2 * lin_nobias  # q, k projections
        + lin  # v projection
        + lin  # output projection
        + 2 * 3 * 3 * 4
        + 3 * 4  # E1 (+E3 merged: add u)
        + 2 * 3 * 5 * 4
        + 3 * 4  # E2 (+E4 merged: add v) on the 3 x 5 offset table
        + 2 * 3 * 3  # add the relative bias to the content logits
        + 3 * 2 * 3 * 3  # softmax: exp, sum, divide
        + 2 * 3 * 3 * 4  # weighted sum of values
    )
    assert expected == 768
    assert att.flops(3) == expected
    assert att.shared_flops(3) == 5 * 2 * 4 * 4  # the r projection, 5 offsets, once per batch
    # the biased layer adds the two biases
    assert FactoredAttention(4, 2, "encoder", "1111", qk_bias=True).flops(3) == expected + 2 * 3 * 4
    # decoder "0001" with w=1, T=4: offsets -1..0 (L=2); E4 alone is one score per offset and head, per batch
    dec = FactoredAttention(4, 2, "decoder", "0001", window=1)
    lin4 = 4 * (2 * 4 * 4 + 4)
    assert dec.flops(4) == 2 * lin4 + 3 * 2 * 4 * 4 + 2 * 4 * 4 * 4
    assert dec.shared_flops(4) == 2 * 2 * 4 * 4 + 2 * 2 * 4
    # "0010" encoder: one weight row per sentence, a bias-free key projection
    e3 = FactoredAttention(4, 2, "encoder", "0010")
    lin1 = 2 * 4 * 4 + 4
    assert e3.flops(3) == lin + lin_nobias + lin1 + 2 * 3 * 4 + 3 * 2 * 3 + 2 * 3 * 4
    assert e3.shared_flops(3) == 0


def ctx(role):
    return BuildContext(d_model=D, n_heads=H, role=role, layer=0, n_layers=1, dropout=0.1)


def test_build_through_registry():
    att = build_mixer(parse_spec("0110:w=3"), ctx("decoder"))
    assert isinstance(att, FactoredAttention) and att.mask == "0110" and att.window == 3
    assert att.dropout == 0.1
    cross = build_mixer(parse_spec("1111:offset=aligned,ratio=1.2"), ctx("cross"))
    assert cross.offset == "aligned" and cross.ratio == 1.2
    # masks are bias-free; the standard biased layer only when asked for
    assert build_mixer(parse_spec("1000"), ctx("encoder")).q_proj.bias is None
    biased = build_mixer(parse_spec("1000:proj_bias=1"), ctx("encoder"))
    assert biased.qk_bias and biased.q_proj.bias is not None and biased.k_proj.bias is not None


@pytest.mark.parametrize(
    "spec,role,message",
    [
        ("0000", "encoder", "w/o"),
        ("1000:offset=aligned", "encoder", "cross-attention only"),
        ("1000:ratio=1.1", "decoder", "cross-attention only"),
        ("1000:ratio=1.1", "cross", "offset=aligned"),
        ("1000:offset=diagonal", "cross", "plain, aligned"),
        ("1000:w=-1", "encoder", "w=-1"),
        ("1000:w=two", "encoder", "not a valid integer"),
        ("1000:offset=aligned,ratio=0", "cross", "ratio"),
        ("1000:k=3", "encoder", "unknown option"),
    ],
)
def test_bad_specs_raise_clear_errors(spec, role, message):
    with pytest.raises(SpecError, match=message):
        build_mixer(parse_spec(spec), ctx(role))
