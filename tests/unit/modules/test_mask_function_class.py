"""A factor mask is a function class: what the attention weights of each mask may depend on.

With the query content zeroed, E1 and E2 vanish, so for every one of the 15 masks and the 3 roles
(with windows and aligned offsets, through ``forward`` and through the incremental ``step``):

- without E3 and E4 the weights are uniform over the allowed keys;
- with E4 but not E3 they do not depend on key content;
- with E3 but not E4 they do not depend on position (a function of key content on the allowed set);

and every enabled term changes the output. A parameter that smuggles a term in (a bias on the query
projection adds E3 and E4) breaks these: the biased layer is shown to fail them.

"Zero query content": in cross-attention the queries ``x`` are zero; in the self roles queries and
keys are the same sequence, so the query projection U is zeroed instead (U z_q = 0 for every z_q).
"""

from itertools import product

import pytest
import torch

from nmt.modules.factored_attention import FactoredAttention

MASKS = ["".join(bits) for bits in product("01", repeat=4) if "1" in bits]
D, H, B, T, S = 8, 2, 2, 6, 5
CASES = [
    ("encoder", {}),
    ("encoder", {"window": 1}),
    ("decoder", {}),
    ("decoder", {"window": 2}),
    ("cross", {}),
    ("cross", {"window": 2}),
    ("cross", {"offset": "aligned", "ratio": 1.3}),
]
IDS = [f"{role}-{'-'.join(f'{k}{v}' for k, v in kw.items()) or 'plain'}" for role, kw in CASES]


def make(mask: str, role: str, qk_bias: bool = False, **kw) -> FactoredAttention:
    """Float64, eval mode, every parameter random at unit scale (so every term is large)."""
    torch.manual_seed(0)
    att = FactoredAttention(D, H, role, mask, qk_bias=qk_bias, **kw).double().eval()
    with torch.no_grad():
        for p in att.parameters():
            p.copy_(torch.randn_like(p))
    att.record_weights = True
    return att


def zero_query(att: FactoredAttention) -> None:
    if att.q_proj is not None and att.role != "cross":
        with torch.no_grad():
            att.q_proj.weight.zero_()


def lengths_of(role: str) -> list[int]:
    """Key lengths per sentence: padding in the encoder and cross roles; the decoder steps have none."""
    return [T, T] if role == "decoder" else ([T, T - 2] if role == "encoder" else [S, S - 2])


def key_padding(role: str) -> torch.Tensor:
    n = T if role != "cross" else S
    return torch.arange(n)[None, :] >= torch.tensor(lengths_of(role))[:, None]  # (B, n)


def allowed(att: FactoredAttention) -> torch.Tensor:
    """(B, T, n) bool, looped pair by pair: padding, causality, window around k - c(q)."""
    lengths = lengths_of(att.role)
    n = T if att.role != "cross" else S
    ok = torch.zeros(B, T, n, dtype=torch.bool)
    for b, q, k in product(range(B), range(T), range(n)):
        c = q
        if att.offset == "aligned":
            t_hat = max(1, int(att.ratio * lengths[b] + 0.5))
            c = (2 * q * lengths[b] + t_hat) // (2 * t_hat)
        good = k < lengths[b] and not (att.role == "decoder" and k > q)
        ok[b, q, k] = good and (att.window is None or abs(k - c) <= att.window)
    return ok


def weights(att: FactoredAttention, x: torch.Tensor, keys: torch.Tensor, via: str) -> torch.Tensor:
    """Attention weights (B, H, T, n) of queries ``x`` over ``keys`` (the memory in cross-attention;
    in the self roles the keys are the sequence itself and ``x`` is ignored)."""
    pad = key_padding(att.role)
    if via == "forward":
        if att.role == "cross":
            att(x, memory=keys, memory_padding_mask=pad)
        else:
            att(keys, padding_mask=pad)
        return att.last_weights.clone()
    seq = x if att.role == "cross" else keys
    state, rows = None, []
    for t in range(T):
        _, state = att.step(seq[:, t : t + 1], state, memory=keys if att.role == "cross" else None,
                            memory_padding_mask=pad if att.role == "cross" else None)
        rows.append(att.last_weights[..., -1:, :])  # (B, H, 1, t+1 or S)
    n = T if att.role != "cross" else S
    return torch.cat([torch.nn.functional.pad(r, (0, n - r.size(-1))) for r in rows], dim=2)


def inputs(att: FactoredAttention, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(queries, keys) with zero query content: zero queries in cross, else U already zeroed."""
    g = torch.Generator().manual_seed(seed)
    n = S if att.role == "cross" else T
    keys = torch.randn(B, n, D, generator=g, dtype=torch.float64)
    x = torch.zeros(B, T, D, dtype=torch.float64)
    return x, keys


def vias(role: str) -> list[str]:
    return ["forward"] if role == "encoder" else ["forward", "step"]


def uniform(ok: torch.Tensor) -> torch.Tensor:
    """Uniform weights over the allowed keys, (B, 1, T, n); rows without a key are 0."""
    counts = ok.sum(-1, keepdim=True).clamp(min=1)
    return (ok.double() / counts)[:, None]


@pytest.mark.parametrize("role,kw", CASES, ids=IDS)
@pytest.mark.parametrize("mask", MASKS)
def test_zero_query_content_leaves_only_e3_and_e4(mask, role, kw):
    att = make(mask, role, **kw)
    zero_query(att)
    ok = allowed(att)
    has_e3, has_e4 = mask[2] == "1", mask[3] == "1"
    for via in vias(role):
        x, keys = inputs(att, seed=1)
        w = weights(att, x, keys, via)
        assert (w[~ok[:, None].expand_as(w)] == 0).all(), "weight on a key that is not allowed"
        if not has_e3 and not has_e4:
            torch.testing.assert_close(w, uniform(ok).expand_as(w), atol=1e-12, rtol=0)
            continue
        # another key content, same positions and padding
        _, keys2 = inputs(att, seed=2)
        w2 = weights(att, x, keys2, via)
        if not has_e3:  # E4 alone: a function of position only
            torch.testing.assert_close(w2, w, atol=1e-12, rtol=0)
            assert not torch.allclose(w, uniform(ok).expand_as(w)), "E4 should make the weights depend on position"
        else:
            assert not torch.allclose(w2, w), "E3 should make the weights depend on key content"
        if not has_e4:  # E3 alone: w_qk / w_qk' is the same for every query that sees k and k'
            check_position_free(w, ok)


def check_position_free(w: torch.Tensor, ok: torch.Tensor) -> None:
    """For E3 alone, log w_qk - log w_qk' = f(x_k) - f(x_k') for every query q allowed both keys."""
    Bn, Hn, Tn, n = w.shape
    checked = 0
    for b, h in product(range(Bn), range(Hn)):
        ref: dict[tuple[int, int], float] = {}
        for q in range(Tn):
            keys = [k for k in range(n) if ok[b, q, k]]
            for k1, k2 in zip(keys, keys[1:]):
                gap = float(w[b, h, q, k1].log() - w[b, h, q, k2].log())
                if (k1, k2) in ref:
                    assert abs(ref[(k1, k2)] - gap) < 1e-9, f"E3 weights depend on the query position {q}"
                    checked += 1
                ref[(k1, k2)] = gap
    assert checked > 0 or Tn == 1


@pytest.mark.parametrize("role", ["encoder", "cross"])
def test_e3_alone_is_permutation_equivariant_over_keys(role):
    """Without window or causality, permuting the keys permutes the "0010" weights the same way."""
    att = make("0010", role)
    x, keys = inputs(att, seed=3)
    keys = keys[:1]  # one sentence, no padding
    x = x[:1]
    perm = torch.randperm(keys.size(1), generator=torch.Generator().manual_seed(0))
    call = (lambda k: att(x, memory=k)) if role == "cross" else (lambda k: att(k))
    call(keys)
    w = att.last_weights.clone()
    call(keys[:, perm])
    torch.testing.assert_close(att.last_weights[..., :], w[..., perm], atol=1e-12, rtol=0)


@pytest.mark.parametrize("role,kw", CASES, ids=IDS)
@pytest.mark.parametrize("mask", MASKS)
def test_every_enabled_term_changes_the_output(mask, role, kw):
    att = make(mask, role, **kw)
    att.record_weights = False
    g = torch.Generator().manual_seed(4)
    x = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    memory = torch.randn(B, S, D, generator=g, dtype=torch.float64)

    def run():
        if role == "cross":
            return att(x, memory=memory, memory_padding_mask=key_padding(role))
        return att(x, padding_mask=key_padding(role))

    full = run()
    for i, bit in enumerate(mask):
        if bit != "1":
            continue
        att.use_terms(mask[:i] + "0" + mask[i + 1 :])
        without = run()
        att.use_terms(None)
        assert not torch.allclose(without, full, atol=1e-6), f"E{i + 1} has no effect in {mask} ({role})"


@pytest.mark.parametrize("mask", ["1000", "0100", "1100"])
def test_a_biased_query_projection_breaks_the_function_class(mask):
    """The standard biased layer is not "1000": with zero queries it still reads key content
    (an implicit E3 with u = b_q) and, with E2, position (an implicit E4)."""
    att = make(mask, "cross", qk_bias=True)
    x, keys = inputs(att, seed=1)
    w = weights(att, x, keys, "forward")
    ok = allowed(att)
    assert not torch.allclose(w, uniform(ok).expand_as(w), atol=1e-3)
    # the bias-free layer with the same weights is uniform
    plain = make(mask, "cross")
    with torch.no_grad():
        for name, p in plain.named_parameters():
            p.copy_(dict(att.named_parameters())[name])
    torch.testing.assert_close(weights(plain, x, keys, "forward"), uniform(ok).expand_as(w), atol=1e-12, rtol=0)


def test_biased_1000_equals_1010_with_u_from_the_bias():
    """(U z + b) . V^C x = E1 + b . V^C x: the biased "1000" computes exactly "1010" with u = b."""
    biased = make("1000", "cross", qk_bias=True)
    e13 = make("1010", "cross")
    with torch.no_grad():
        e13.q_proj.weight.copy_(biased.q_proj.weight)
        e13.k_proj.weight.copy_(biased.k_proj.weight)
        e13.u.copy_(biased.q_proj.bias.view(H, D // H))
        for name in ("v_proj", "out_proj"):
            getattr(e13, name).load_state_dict(getattr(biased, name).state_dict())
    g = torch.Generator().manual_seed(5)
    x = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    memory = torch.randn(B, S, D, generator=g, dtype=torch.float64)
    pad = key_padding("cross")
    torch.testing.assert_close(biased(x, memory=memory, memory_padding_mask=pad),
                               e13(x, memory=memory, memory_padding_mask=pad), atol=1e-12, rtol=0)


@pytest.mark.parametrize("role,kw", CASES, ids=IDS)
@pytest.mark.parametrize("mask", ["1111", "0110", "1001"])
def test_term_logits_sum_to_the_attention_weights(mask, role, kw):
    att = make(mask, role, **kw)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    memory = torch.randn(B, S, D, generator=g, dtype=torch.float64)
    pad = key_padding(role)
    if role == "cross":
        att(x, memory=memory, memory_padding_mask=pad)
        terms, ok = att.term_logits(x, memory=memory, memory_padding_mask=pad)
    else:
        att(x, padding_mask=pad)
        terms, ok = att.term_logits(x, padding_mask=pad)
    assert list(terms) == [f"E{i + 1}" for i, c in enumerate(mask) if c == "1"]
    logits = sum(terms.values()).masked_fill(~ok, float("-inf"))
    expected = torch.nan_to_num(logits.softmax(-1), nan=0.0)
    torch.testing.assert_close(att.last_weights, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(ok[:, 0].expand(B, T, -1), allowed(att))
