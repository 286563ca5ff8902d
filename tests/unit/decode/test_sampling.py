"""Sampling: seeded reproducibility, top-k / top-p filtering, temperature, n samples."""

from __future__ import annotations

import torch
from helpers.decode_toys import BOS, EOS, PAD, TableModel, TinyGRU, make_batch, table_row

from nmt.decode import DecodeConfig, Sampler, translate_batch

SENTS = [[3, 4, 5, 6, 7], [8, 3], [5, 5, 9, 10, 4, 3, 7, 8]]


def translate(model, sents, **kw):
    src, mask = make_batch(sents)
    return translate_batch(model, src, mask, DecodeConfig(**kw), bos=BOS, eos=EOS, pad=PAD)


def tokens(out):
    return [[h.tokens for h in hs] for hs in out]


def test_seeded_sampling_is_reproducible():
    model = TinyGRU(seed=7)
    for method in ("topk", "topp"):
        a = translate(model, SENTS, sampling=method, k=5, p=0.95, nbest=3, seed=11)
        b = translate(model, SENTS, sampling=method, k=5, p=0.95, nbest=3, seed=11)
        c = translate(model, SENTS, sampling=method, k=5, p=0.95, nbest=3, seed=12)
        assert tokens(a) == tokens(b)
        assert tokens(a) != tokens(c)
        for hs in a:
            assert len(hs) == 3
            assert [h.score for h in hs] == sorted((h.score for h in hs), reverse=True)


def test_top1_sampling_is_greedy():
    model = TinyGRU(seed=8)
    greedy = translate(model, SENTS, beam=1)
    sampled = translate(model, SENTS, sampling="topk", k=1, seed=3)
    assert tokens(greedy) == tokens(sampled)


def test_topk_filter_keeps_k_tokens():
    lprobs = torch.randn(4, 9).log_softmax(-1)
    kept = Sampler("topk", k=3).filter(lprobs)
    assert (kept > -float("inf")).sum(-1).tolist() == [3] * 4
    top3 = lprobs.topk(3).indices.sort().values
    assert torch.equal((kept > -float("inf")).nonzero()[:, 1].view(4, 3), top3)


def test_topp_filter_keeps_nucleus():
    lprobs = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    kept = lambda p: (Sampler("topp", p=p).filter(lprobs) > -float("inf")).squeeze(0).tolist()
    assert kept(0.4) == [True, False, False, False]
    assert kept(0.75) == [True, True, False, False]
    assert kept(0.85) == [True, True, True, False]
    assert kept(1.0) == [True, True, True, True]


def test_samples_respect_topk_and_temperature():
    """First tokens drawn with k=2 come only from the two most likely ones; a low temperature
    makes the most likely one dominate."""
    V = 10
    bank = torch.stack([table_row(V, {EOS: 0.99}, [9]) for _ in range(V)]).unsqueeze(0)  # (1, V, V)
    bank[0, BOS] = table_row(V, {3: 0.4, 4: 0.3, 5: 0.2}, [6, 7, 8, 9])
    model = TableModel(bank.unsqueeze(0).float())  # (1, 1, V, V)
    out = translate(model, [[0]], sampling="topk", k=2, nbest=200, seed=0, max_len_a=0, max_len_b=1)[0]
    firsts = [h.tokens[0] for h in out]
    assert set(firsts) == {3, 4}
    cold = translate(
        model, [[0]], sampling="topk", k=2, nbest=200, seed=0, temperature=0.1, max_len_a=0, max_len_b=1
    )[0]
    assert sum(h.tokens[0] == 3 for h in cold) > 190 > sum(t == 3 for t in firsts)
