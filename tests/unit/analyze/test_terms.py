"""Term statistics: the variance decomposition over allowed keys, entropies, and a model where one
term is known to dominate."""

from __future__ import annotations

import math

import pytest
import torch
from helpers.analyze_toys import toy_batch, toy_model

from nmt.analyze.collect import term_statistics
from nmt.analyze.report import summary
from nmt.analyze.sites import attention_sites, capturing
from nmt.analyze.terms import TermStats
from nmt.modules.factored_attention import FactoredAttention


def loop_statistics(terms: dict, allowed: torch.Tensor, real: torch.Tensor) -> dict:
    """Per query and head, population variance / covariance and entropy over the allowed keys, by loops."""
    names = list(terms)
    B, H, T, S = terms[names[0]].shape
    var = {t: 0.0 for t in names}
    total, ent, count = 0.0, {t: 0.0 for t in names}, 0
    for b in range(B):
        for t in range(T):
            keys = allowed.expand(B, 1, T, S)[b, 0, t]
            if not real[b, t] or not keys.any():
                continue
            for h in range(H):
                vals = {n: terms[n][b, h, t][keys].double() for n in names}
                for n in names:
                    var[n] += float(vals[n].var(unbiased=False))
                    p = vals[n].softmax(0)
                    ent[n] += float(-(p * p.log()).sum())
                total += float(sum(vals.values()).var(unbiased=False))
                count += 1
    return {"variance": {n: v / count for n, v in var.items()}, "variance_all": total / count,
            "entropy": {n: e / count for n, e in ent.items()}, "pairs": count}


@pytest.mark.parametrize("role", ["encoder", "decoder", "cross"])
def test_statistics_equal_a_loop_over_queries_and_the_shares_add_up(role):
    torch.manual_seed(1)
    att = FactoredAttention(8, 2, role, "1111", window=3 if role == "encoder" else None).double().eval()
    with torch.no_grad():
        for p in att.parameters():
            p.copy_(torch.randn_like(p))
    x, mem = torch.randn(2, 6, 8, dtype=torch.float64), torch.randn(2, 5, 8, dtype=torch.float64)
    pad = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    kw = {"memory": mem, "memory_padding_mask": pad} if role == "cross" else (
        {"padding_mask": torch.cat([pad, torch.zeros(2, 1, dtype=torch.bool)], 1)} if role == "encoder" else {})
    with torch.no_grad():
        terms, allowed = att.term_logits(x, **kw)
    real = torch.ones(2, 6, dtype=torch.bool)
    real[1, 4:] = False
    stats = TermStats(tuple(terms))
    stats.add(terms, allowed, real)
    got, want = stats.result(), loop_statistics(terms, allowed, real)
    assert got["pairs"] == want["pairs"]
    for t in terms:
        assert got["variance"][t] == pytest.approx(want["variance"][t], rel=1e-9)
        assert got["entropy"][t] == pytest.approx(want["entropy"][t], rel=1e-9)
    assert got["variance_all"] == pytest.approx(want["variance_all"], rel=1e-9)
    assert sum(got["share"].values()) + got["covariance_share"] == pytest.approx(1.0, abs=1e-12)
    assert got["variance_all"] == pytest.approx(sum(got["variance"].values()) + sum(got["covariance"].values()))


def test_entropy_of_all_terms_is_the_entropy_of_the_models_own_weights():
    """The captured terms sum to the logits the module normalises: the entropy of softmax(sum)
    equals that of the weights the module itself records during the same forward pass."""
    model = toy_model()
    batch = toy_batch()
    sites = attention_sites(model)
    recorded = {}
    for s in sites:
        s.module.record_weights = True
    stats = {s.name: TermStats(s.terms) for s in sites}

    def sink(site, terms, allowed):
        real = ~(batch.src_padding_mask if site.role == "encoder" else batch.tgt_padding_mask)
        stats[site.name].add(terms, allowed, real)

    with torch.no_grad(), capturing(sites, sink):
        model(batch.src, batch.src_padding_mask, batch.tgt_in)
    for s in sites:
        w = s.module.last_weights  # (B, H, T, S)
        recorded[s.name] = w
        real = ~(batch.src_padding_mask if s.role == "encoder" else batch.tgt_padding_mask)
        ent = torch.special.entr(w.double()).sum(-1)  # (B, H, T)
        want = float(ent[real[:, None].expand_as(ent)].mean())
        assert stats[s.name].result()["entropy_all"] == pytest.approx(want, rel=1e-4), s.name


def test_a_term_scaled_up_by_hand_carries_the_variance_and_the_summary_says_so():
    model = toy_model(layers=2)
    target = next(s for s in attention_sites(model) if s.name == "cross/layer1")
    with torch.no_grad():
        target.module.v.mul_(400.0)  # E4 = v . V^R R_{k-q}: a large position-only term
    stats = term_statistics(model, [toy_batch(seed=k) for k in range(2)])
    contributions = {n: {"role": n.split("/")[0], "layer": int(n[-1]), **r} for n, r in stats.items()}
    share = stats["cross/layer1"]["share"]
    assert share["E4"] > 0.95 and max(share["E1"], share["E2"], share["E3"]) < 0.05
    others = [r["share"]["E4"] for n, r in stats.items() if n != "cross/layer1"]
    assert max(others) < 0.9  # the untouched modules are not dominated by E4
    lines = summary(contributions, [])
    line = next(x for x in lines if x.startswith("in cross layer 1,"))
    assert "E4 carries" in line
    pct = int(line.split("E4 carries ")[1].split(" %")[0])
    assert pct == round(100 * share["E4"])
    assert not math.isnan(stats["cross/layer1"]["entropy"]["E4"])
