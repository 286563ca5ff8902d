"""Ensembles: one member equals the model; two members average their distributions."""

from __future__ import annotations

import pytest
import torch
from helpers.decode_toys import BOS, EOS, PAD, TinyGRU, make_batch

from nmt.decode import DecodeConfig, EnsembleModel, Seq2Seq, translate_batch

SENTS = [[3, 4, 5, 6, 7], [8, 3], [5, 9, 10, 4]]


def translate(model, **kw):
    src, mask = make_batch(SENTS)
    return translate_batch(model, src, mask, DecodeConfig(**kw), bos=BOS, eos=EOS, pad=PAD)


def test_single_member_ensemble_equals_model():
    model = TinyGRU(seed=1)
    assert isinstance(model, Seq2Seq) and isinstance(EnsembleModel([model]), Seq2Seq)
    for mode in ("linear", "log_linear"):
        a, b = translate(model, beam=3, nbest=2), translate(EnsembleModel([model], mode), beam=3, nbest=2)
        assert [[h.tokens for h in hs] for hs in a] == [[h.tokens for h in hs] for hs in b]
        assert [h.score for hs in a for h in hs] == pytest.approx([h.score for hs in b for h in hs], abs=1e-5)


@pytest.mark.parametrize("mode", ["linear", "log_linear"])
def test_ensemble_step_averages(mode):
    m1, m2 = TinyGRU(seed=1), TinyGRU(seed=2)
    ens = EnsembleModel([m1, m2], mode)
    src, mask = make_batch(SENTS)
    tokens = torch.tensor([3, 4, 5])
    with torch.no_grad():
        out, state = ens.step(tokens, ens.init_state(ens.encode(src, mask), mask))
        l1 = m1.step(tokens, m1.init_state(m1.encode(src, mask), mask))[0].log_softmax(-1)
        l2 = m2.step(tokens, m2.init_state(m2.encode(src, mask), mask))[0].log_softmax(-1)
        expected = ((l1.exp() + l2.exp()) / 2).log() if mode == "linear" else ((l1 + l2) / 2).log_softmax(-1)
        assert torch.allclose(out, expected, atol=1e-5)
        assert torch.allclose(out.logsumexp(-1), torch.zeros(3), atol=1e-5)
        idx = torch.tensor([2, 2, 0])
        reordered = ens.reorder_state(state, idx, idx)
        assert reordered[1]["h"].shape[0] == 3
    hyps = translate(ens, beam=2)
    assert len(hyps) == len(SENTS)


def test_ensemble_rejects_bad_arguments():
    with pytest.raises(ValueError, match="at least one"):
        EnsembleModel([])
    with pytest.raises(ValueError, match="mode"):
        EnsembleModel([TinyGRU()], "max")
