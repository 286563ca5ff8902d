"""Test-time term removal: what ``removed`` switches off, and that a term that is zero anyway
changes nothing."""

from __future__ import annotations

import torch
from helpers.analyze_toys import BOS, EOS, PAD, toy_batch, toy_model

from nmt.analyze.ablation import removals, removed
from nmt.analyze.sites import attention_sites
from nmt.decode import DecodeConfig, translate_batch
from nmt.model.transformer import Transformer


def hidden(model: Transformer, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(batch.src, batch.src_padding_mask, batch.tgt_in)


def decoded(model: Transformer, batch) -> list[list[int]]:
    hyps = translate_batch(model, batch.src, batch.src_padding_mask, DecodeConfig(beam=2, max_len=12), BOS, EOS, PAD)
    return [h[0].tokens for h in hyps]


def test_removing_a_term_that_is_zero_anyway_changes_nothing_and_a_live_one_does():
    model = toy_model(layers=2)
    cross = [s for s in attention_sites(model) if s.role == "cross"]
    with torch.no_grad():
        for s in cross:
            s.module.u.zero_()  # E3 = u . V^C x_k is 0 in every cross layer
    batch = toy_batch()
    h0, d0 = hidden(model, batch), decoded(model, batch)
    with removed(cross, "E3") as names:
        assert names == ["cross/layer0", "cross/layer1"]
        assert all(s.module.active_mask == "1101" for s in cross)
        assert torch.equal(hidden(model, batch), h0)
        assert decoded(model, batch) == d0
    assert all(s.module.active_mask == "1111" for s in cross)  # restored
    with removed(cross, "E1"):
        assert not torch.allclose(hidden(model, batch), h0)
    assert torch.equal(hidden(model, batch), h0)


def test_the_plan_covers_roles_then_layers():
    sites = attention_sites(toy_model(layers=2, mask="1000"))
    plan = removals(sites)
    assert [r.label for r in plan] == [
        "encoder-all-E1", "encoder-layer0-E1", "encoder-layer1-E1",
        "decoder-all-E1", "decoder-layer0-E1", "decoder-layer1-E1",
        "cross-all-E1", "cross-layer0-E1", "cross-layer1-E1"]
    assert [r.label for r in removals(sites, per_layer=False)] == ["encoder-all-E1", "decoder-all-E1", "cross-all-E1"]
    with removed(plan[0].sites, "E1"):  # the only term: uniform weights over the allowed keys
        assert [s.module.active_mask for s in sites if s.role == "encoder"] == ["0000", "0000"]


def test_removal_reaches_the_branches_of_combinations():
    model = toy_model(layers=2, mask="1000", cross=["1010+0001", "0100>1000"])
    sites = attention_sites(model)
    assert [s.name for s in sites if s.role == "cross"] == ["cross/layer0.0", "cross/layer0.1", "cross/layer1.0",
                                                             "cross/layer1.1"]
    plan = {r.label: r for r in removals(sites)}
    assert [s.name for s in plan["cross-all-E1"].sites] == ["cross/layer0.0", "cross/layer1.1"]
    assert "cross-layer0-E4" not in plan  # E4 lives in one cross layer: its all-layers removal is the layer's
    batch = toy_batch()
    h0 = hidden(model, batch)
    with removed(plan["cross-all-E4"].sites, "E4"):
        assert sites[[s.name for s in sites].index("cross/layer0.1")].module.active_mask == "0000"
        assert not torch.allclose(hidden(model, batch), h0)
    assert torch.equal(hidden(model, batch), h0)
