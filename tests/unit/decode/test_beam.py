"""Beam search: agreement with greedy, n-best order, length penalty, batching, incremental state,
length limits, exhaustive optimality on a tiny vocabulary."""

from __future__ import annotations

import itertools

import pytest
import torch
from helpers.decode_toys import BOS, EOS, PAD, TableModel, TinyGRU, make_batch, table_row

from nmt.decode import (
    DecodeConfig,
    beam_search,
    greedy_search,
    length_penalty,
    sequence_logprobs,
    translate_batch,
)

SENTS = [[3, 4, 5, 6, 7], [8, 3], [5, 5, 9, 10, 4, 3, 7, 8], [6]]


def translate(model, sents, **kw):
    src, mask = make_batch(sents)
    return translate_batch(model, src, mask, DecodeConfig(**kw), bos=BOS, eos=EOS, pad=PAD)


def test_beam_one_equals_greedy():
    model = TinyGRU()
    beam1 = translate(model, SENTS, beam=1, max_len_a=1.0, max_len_b=4)
    src, mask = make_batch(SENTS)
    with torch.no_grad():
        state = model.init_state(model.encode(src, mask), mask)
        limits = torch.tensor([len(s) + 4 for s in SENTS])
        greedy = greedy_search(model, state, limits, bos=BOS, eos=EOS, pad=PAD)
        state = model.init_state(model.encode(src, mask), mask)
        beam = beam_search(model, state, limits, bos=BOS, eos=EOS, pad=PAD, beam=1)
    assert [h[0].tokens for h in beam1] == [h.tokens for h in greedy] == [h[0].tokens for h in beam]
    assert [h[0].score for h in beam] == pytest.approx([h.score for h in greedy], abs=1e-6)
    assert any(h.finished for h in greedy) and any(len(h.tokens) > 0 for h in greedy)


def test_nbest_sorted_and_rescored_by_teacher_forcing():
    model = TinyGRU()
    out = translate(model, SENTS, beam=4, nbest=4, alpha=0.6)
    assert all(len(hyps) == 4 for hyps in out)
    for i, hyps in enumerate(out):
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) + (h.finished,) for h in hyps}) == 4  # distinct hypotheses
        # A fresh teacher-forced pass must reproduce the search's log-probabilities.
        src, mask = make_batch([SENTS[i]] * 4)
        ref = sequence_logprobs(
            model,
            src,
            mask,
            [h.tokens for h in hyps],
            bos=BOS,
            eos=EOS,
            append_eos=[h.finished for h in hyps],
        )
        assert [h.logprob for h in hyps] == pytest.approx(ref.tolist(), abs=1e-4)
        for h in hyps:
            assert h.score == pytest.approx(h.logprob / length_penalty(h.num_predictions, 0.6))
            assert EOS not in h.tokens and PAD not in h.tokens and BOS not in h.tokens


def test_batch_order_and_padding_do_not_change_results():
    model = TinyGRU(seed=1)
    batched = translate(model, SENTS, beam=3, nbest=2)
    for sent, hyps in zip(SENTS, batched):
        alone = translate(model, [sent], beam=3, nbest=2)[0]
        assert [h.tokens for h in hyps] == [h.tokens for h in alone]
        assert [h.score for h in hyps] == pytest.approx([h.score for h in alone], abs=1e-5)
    reversed_out = translate(model, SENTS[::-1], beam=3, nbest=2)[::-1]
    assert [[h.tokens for h in hs] for hs in reversed_out] == [[h.tokens for h in hs] for hs in batched]


def test_steps_are_incremental():
    """One step per hypothesis and time step: the prefix is never fed again."""
    model = TinyGRU()
    out = translate(model, [SENTS[0]], beam=1, max_len_a=0, max_len_b=7, min_len=7)
    assert len(out[0][0].tokens) == 7
    assert model.steps == 7


def swap_model() -> TableModel:
    """From bos: short [3] (logprob -1.5, 2 predictions) vs long [4, 5, 5] (logprob -2.0, 4 predictions);
    every other continuation spreads its mass over junk tokens that end at once."""
    V, T = 30, 4
    junk = list(range(7, V))
    p3 = float(torch.tensor(-1.5).exp())
    p4 = 1 - p3 - 1e-3
    q = float(torch.tensor((-2.0 - torch.tensor(p4).log().item()) / 2).exp())
    bank = torch.stack([table_row(V, {EOS: 1 - 1e-6}, []) for _ in range(V)])  # (V, V): default ends
    bank = bank.unsqueeze(0).repeat(T, 1, 1).clone()  # (T, V, V)
    bank[0, BOS] = table_row(V, {3: p3, 4: p4}, junk)
    bank[:, 3] = table_row(V, {EOS: 1 - 1e-6}, [])
    bank[1, 4] = table_row(V, {5: q}, junk)
    bank[2, 5] = table_row(V, {5: q}, junk)
    bank[3, 5] = table_row(V, {EOS: 1 - 1e-6}, [])
    return TableModel(bank.unsqueeze(0).float())


@pytest.mark.parametrize("alpha, winner", [(0.0, [3]), (2.0, [4, 5, 5])])
def test_length_penalty_swaps_short_and_long(alpha, winner):
    model = swap_model()
    out = translate(model, [[0]], beam=4, nbest=4, alpha=alpha, early_stop=False, max_len_a=0, max_len_b=8)
    hyps = out[0]
    assert hyps[0].tokens == winner
    by_tokens = {tuple(h.tokens): h for h in hyps}
    assert by_tokens[(3,)].logprob == pytest.approx(-1.5, abs=1e-3)
    assert by_tokens[(4, 5, 5)].logprob == pytest.approx(-2.0, abs=1e-3)


def test_exact_stopping_is_never_worse():
    model = swap_model()
    fast = translate(model, [[0]], beam=4, alpha=2.0, max_len_a=0, max_len_b=8)[0][0]
    exact = translate(model, [[0]], beam=4, alpha=2.0, max_len_a=0, max_len_b=8, early_stop=False)[0][0]
    assert exact.score >= fast.score
    model = TinyGRU(seed=3)
    for sent in SENTS:
        fast = translate(model, [sent], beam=3, alpha=1.0)[0][0]
        exact = translate(model, [sent], beam=3, alpha=1.0, early_stop=False)[0][0]
        assert exact.score >= fast.score - 1e-6


def test_exhaustive_on_tiny_vocabulary():
    """With a beam wider than the search space, the n-best equals brute-force enumeration."""
    model = TinyGRU(vocab=5, seed=2)
    max_len, alpha = 3, 0.8
    cands = [(seq, True) for n in range(max_len) for seq in itertools.product([3, 4], repeat=n)]
    cands += [(seq, False) for seq in itertools.product([3, 4], repeat=max_len)]
    src, mask = make_batch([[3, 4, 4]] * len(cands))
    logps = sequence_logprobs(
        model, src, mask, [list(s) for s, _ in cands], bos=BOS, eos=EOS, append_eos=[f for _, f in cands]
    )
    brute = sorted(
        ((lp / length_penalty(len(s) + f, alpha), list(s)) for (s, f), lp in zip(cands, logps.tolist())),
        reverse=True,
    )
    out = translate(model, [[3, 4, 4]], beam=8, nbest=8, alpha=alpha, max_len_a=0, max_len_b=max_len)[0]
    assert [h.tokens for h in out] == [s for _, s in brute[:8]]
    assert [h.score for h in out] == pytest.approx([sc for sc, _ in brute[:8]], abs=1e-5)


def test_min_and_max_length():
    model = TinyGRU(seed=4)
    for h in (h for hs in translate(model, SENTS, beam=3, nbest=3, min_len=4) for h in hs):
        assert len(h.tokens) >= 4
    out = translate(model, SENTS, beam=3, nbest=3, max_len_a=0.5, max_len_b=1)
    for sent, hyps in zip(SENTS, out):
        limit = int(0.5 * len(sent) + 1)
        for h in hyps:
            assert len(h.tokens) <= limit
            assert h.finished or len(h.tokens) == limit


@pytest.mark.parametrize("kw", [{"beam": 4}, {"beam": 1}, {"beam": 1, "sampling": "topk", "k": 3}])
def test_forced_length_32(kw):
    model = TinyGRU(seed=5)
    out = translate(model, SENTS, max_len_a=0, max_len_b=32, min_len=32, **kw)
    assert [len(h.tokens) for hs in out for h in hs] == [32] * len(SENTS)
    assert not any(h.finished for hs in out for h in hs)


def test_eos_ends_hypotheses():
    """Sentence 0 must say [3, 4] then eos; sentence 1 must say [5] then eos."""
    V = 8
    bank = torch.stack([table_row(V, {EOS: 0.99}, [6]) for _ in range(V)]).unsqueeze(0).repeat(3, 1, 1)
    bank = torch.stack([bank, bank.clone()])  # (2, T, V, V)
    bank[0, 0, BOS] = table_row(V, {3: 0.9}, [6])
    bank[0, 1, 3] = table_row(V, {4: 0.9}, [6])
    bank[1, 0, BOS] = table_row(V, {5: 0.9}, [6])
    model = TableModel(bank.float())
    for kw in ({"beam": 1}, {"beam": 3}):
        out = translate(model, [[0, 7], [1]], max_len_a=0, max_len_b=10, **kw)
        assert [hs[0].tokens for hs in out] == [[3, 4], [5]]
        assert all(hs[0].finished for hs in out)


def test_config_errors():
    from nmt.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match="nbest"):
        DecodeConfig(beam=2, nbest=3)
    with pytest.raises(ConfigError, match="decode.temperature"):
        from_dict(DecodeConfig, {"temperature": 0})
    with pytest.raises(ConfigError, match="sampling"):
        from_dict(DecodeConfig, {"sampling": "nucleus"}, "decode")


def test_training_mode_restored():
    model = TinyGRU()
    model.train()
    translate(model, [SENTS[0]], beam=2)
    assert model.training
