"""Batched beam search over the ``Seq2Seq`` step contract.

All ``B * beam`` hypotheses advance together, one ``model.step`` per time step on the last token
only (the model keeps its own incremental state). The first step runs once per sentence (its
``beam`` hypotheses would all be the same ``<s>``); the state is expanded to ``beam`` rows per
sentence after it. Per step the work is one log-softmax over (B*beam, V) and one top-k over the
flattened (B, beam*V) scores (by blocks, ``nmt.decode.topk``); Python only touches the few
hypotheses that end at that step. Sentences that are done leave the batch (the same
``reorder_state`` call that follows the beam back-pointers drops their rows), so later steps
compute only live sentences.

Rules (as in fairseq):

- candidates: the ``2 * beam`` best (hypothesis, token) extensions per sentence; an eos candidate
  among the best ``beam`` ends a hypothesis, the best ``beam`` non-eos candidates stay live;
- a hypothesis ended at step ``n`` (``n`` predictions, eos included) scores
  ``logprob / ((5 + n) / 6) ** alpha``;
- a hypothesis that reaches the sentence's length limit ends there without eos (``finished`` is
  False), so ``min_len = max_len = 32`` yields exactly 32 tokens;
- eos is forbidden before ``min_len`` tokens; pad and bos (unless it is eos) are never produced;
- a sentence is done once ``beam`` hypotheses ended (``early_stop``), or, with ``early_stop=False``,
  once additionally no live hypothesis can beat the beam-th ended one: a live hypothesis's
  log-probability can only fall, so its best possible score is its current log-probability
  divided by the largest length penalty still reachable.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from nmt.decode.hypothesis import Hypothesis, length_penalty
from nmt.decode.protocol import Seq2Seq
from nmt.decode.topk import topk_rows


def beam_search(
    model: Seq2Seq,
    state: Any,
    max_lens: Tensor,
    *,
    bos: int,
    eos: int,
    pad: int,
    beam: int = 5,
    alpha: float = 0.6,
    min_len: int = 0,
    nbest: int = 1,
    early_stop: bool = True,
) -> list[list[Hypothesis]]:
    """Beam search for B sentences from a fresh decoder ``state`` (batch B) with per-sentence length
    limits ``max_lens`` (B,) -> per sentence, the ``nbest`` best hypotheses sorted by score."""
    if nbest > beam:
        raise ValueError(f"nbest ({nbest}) must be <= beam ({beam})")
    device = max_lens.device
    B, K = max_lens.numel(), beam
    inf = float("inf")

    live = torch.arange(B, device=device)  # (b,) original sentence ids of live sentences
    limits = max_lens.to(device=device, dtype=torch.long).clone()  # (b,)
    scores = torch.full((B, K), -inf, device=device)  # (b, K) log-probs of live hypotheses
    scores[:, 0] = 0.0  # the first step has one row per sentence: it stands for row 0
    history = torch.empty((B * K, 0), dtype=torch.long, device=device)  # (b*K, t) tokens so far
    last = torch.full((B,), bos, dtype=torch.long, device=device)  # (b,) at the first step, then (b*K,)
    n_ended = torch.zeros(B, dtype=torch.long, device=device)  # (b,)
    best_ended = torch.full((B, K), -inf, device=device)  # (b, K) top-K ended scores (early_stop=False)
    rank = torch.arange(2 * K, device=device)  # (2K,)
    ended: list[list[Hypothesis]] = [[] for _ in range(B)]

    for t in range(int(limits.max()) if B else 0):
        n = t + 1  # predictions made by a hypothesis extended at this step
        logits, state = model.step(last, state)  # (b*K, V); (b, V) at t = 0
        lprobs = torch.log_softmax(logits.float(), dim=-1)
        V = lprobs.size(-1)
        lprobs[:, pad] = -inf
        if bos != eos:
            lprobs[:, bos] = -inf
        if t < min_len:
            lprobs[:, eos] = -inf
        b = live.numel()
        cand = (scores.unsqueeze(2) + lprobs.view(b, -1, V)).view(b, K * V)  # (b, K*V)
        top_scores, top_idx = topk_rows(cand, min(2 * K, K * V))  # (b, 2K)
        top_src = top_idx // V  # (b, 2K) which hypothesis of the sentence
        top_tok = top_idx % V  # (b, 2K)
        finite = top_scores > -inf
        is_eos = top_tok == eos
        at_limit = limits == n  # (b,) last step for these sentences
        k_rank = rank[: top_idx.size(1)]

        # Hypotheses ending now: eos among the best K, or any of the best K at the length limit.
        ending = (is_eos | at_limit.unsqueeze(1)) & finite & (k_rank < K)  # (b, 2K)
        penalty = length_penalty(n, alpha)
        sent, r = ending.nonzero(as_tuple=True)
        if sent.numel():
            rows = sent * K + top_src[sent, r]
            prefixes = history[rows].tolist()
            toks = top_tok[sent, r].tolist()
            logps = top_scores[sent, r].tolist()
            for sid, prefix, tok, logp in zip(live[sent].tolist(), prefixes, toks, logps):
                done_by_eos = tok == eos
                tokens = prefix if done_by_eos else prefix + [tok]
                ended[sid].append(Hypothesis(tokens, logp / penalty, logp, done_by_eos))
        n_ended = n_ended + ending.sum(dim=1)

        # Live hypotheses: the best K non-eos candidates, in score order.
        order_key = is_eos.long() * (2 * K) + k_rank  # eos candidates sort last
        active = order_key.topk(K, dim=1, largest=False).indices  # (b, K)
        sel_scores = top_scores.gather(1, active)  # (b, K)
        sel_src = top_src.gather(1, active)
        sel_tok = top_tok.gather(1, active)

        done = at_limit | (n_ended >= K)  # (b,)
        if not early_stop:
            normed = torch.where(ending, top_scores / penalty, torch.full_like(top_scores, -inf))
            best_ended = torch.cat([best_ended, normed], dim=1).topk(K, dim=1).values  # (b, K)
            reachable = torch.maximum(  # the largest penalty a live hypothesis can still get
                length_penalty(torch.full_like(limits, n + 1), alpha), length_penalty(limits, alpha)
            ).to(device)
            can_win = sel_scores[:, 0] / reachable > best_ended[:, -1]
            done = at_limit | ((n_ended >= K) & ~can_win)

        keep = (~done).nonzero().squeeze(1)  # (b',)
        if keep.numel() == 0:
            break
        rows = (keep * K).unsqueeze(1) + sel_src[keep]  # (b', K) rows of the current batch
        rows = rows.view(-1)
        state_rows = rows if t > 0 else rows // K  # the first step's state has one row per sentence
        state = model.reorder_state(state, state_rows, None if keep.numel() == live.numel() else keep)
        last = sel_tok[keep].view(-1)  # (b'*K,)
        history = torch.cat([history[rows], last.unsqueeze(1)], dim=1)
        scores = sel_scores[keep]
        live, limits, n_ended, best_ended = live[keep], limits[keep], n_ended[keep], best_ended[keep]

    return [sorted(hyps, key=lambda h: -h.score)[:nbest] for hyps in ended]
