"""What a study measures on a finished run besides BLEU: FLOPs over the test set, and the measured
forward time of the varied attention sublayers.

FLOPs: ``Transformer.flops(src_len, tgt_len)`` summed over the test sentences, with ``src_len`` the
tokenised source length plus ``</s>`` (what the encoder reads) and ``tgt_len`` the tokenised
*reference* length plus one (the teacher-forced decoder input ``<s> y``), so that every setting is
charged for the same lengths whatever it translates.

The projected relative-position table (``Transformer.shared_flops``) depends only on the lengths,
so an implementation computes it once per batch. **The cost of a setting charges it once per
sentence** (``corpus_flops``), with that sentence's lengths: the cost of translating the sentence
on its own, a property of the setting and the test set alone, whatever batch size or batching an
implementation uses. ``corpus_flops_per_batch`` charges it once per batch of the test decoding
(the batches ``nmt.inference.translate_lines`` forms), shown beside it: with large batches the
table's cost is amortised to almost nothing, with one sentence per batch the two agree.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from typing import Sequence

import torch

from nmt.data.subwords import Vocab
from nmt.model.transformer import Transformer

SUBLAYER_LENGTHS = (30, 100)  # tokens: a typical Multi30k sentence, a long WMT one
SUBLAYER_BATCH = 32


Lengths = tuple[list[int], list[int]]  # per sentence pair: source tokens + </s>, reference tokens + 1


def token_lengths(vocab: Vocab, sources: Sequence[str], references: Sequence[str]) -> Lengths:
    """Source lengths with ``</s>`` and reference lengths plus one, per sentence pair (the
    ``lengths`` both cost charges take: encode the test set once for both)."""
    if len(sources) != len(references):
        raise ValueError(f"{len(sources)} sources but {len(references)} references")
    return ([len(ids) + 1 for ids in vocab.encode_src(list(sources))],
            [len(ids) + 1 for ids in vocab.encode_tgt(list(references))])


def _add_total(parts: Counter[str]) -> dict[str, int]:
    out = {k: int(v) for k, v in parts.items() if k != "total"}
    out["total"] = sum(out.values())
    return out


def corpus_flops(model: Transformer, lengths: Lengths) -> dict[str, int]:
    """Sum over sentence pairs (``token_lengths``) of ``model.flops(src_len, tgt_len)`` plus the
    relative-position tables charged once per sentence (``model.shared_flops`` at its lengths): per
    part and "total"."""
    src_lens, tgt_lens = lengths
    totals = _per_sentence(model, src_lens, tgt_lens)
    for (s, t), count in Counter(zip(src_lens, tgt_lens)).items():
        for part, value in model.shared_flops(s, t).items():
            totals[part] += count * int(value)
    return _add_total(totals)


def _per_sentence(model: Transformer, src_lens: list[int], tgt_lens: list[int]) -> Counter[str]:
    """Sum of ``model.flops`` over the sentence pairs' lengths (each distinct length pair computed once)."""
    totals: Counter[str] = Counter()
    for (s, t), count in Counter(zip(src_lens, tgt_lens)).items():
        for part, value in model.flops(s, t).items():
            totals[part] += count * int(value)
    return totals


def corpus_flops_per_batch(model: Transformer, lengths: Lengths, max_tokens: int) -> dict[str, int]:
    """Like ``corpus_flops``, with the relative-position tables charged once per batch of the test
    decoding (sources sorted by length, ``max_tokens`` source tokens per batch) at the batch's
    longest source and reference."""
    import numpy as np

    from nmt.data.batching import chunk_by_budget

    src_lens, tgt_lens = lengths
    totals = _per_sentence(model, src_lens, tgt_lens)
    by_source = np.array(src_lens, dtype=np.int64)
    order = np.argsort(by_source, kind="stable")
    for batch in chunk_by_budget(order, by_source, None, max_tokens, oversize_alone=True):
        b = batch.tolist()
        for part, value in model.shared_flops(max(src_lens[i] for i in b), max(tgt_lens[i] for i in b)).items():
            totals[part] += int(value)
    return _add_total(totals)


def _mixers(model: Transformer, part: str) -> list[torch.nn.Module | None]:
    """The mixers of one part ("encoder_self", "decoder_self", "cross") in layer order (None: "w/o")."""
    if part == "encoder_self":
        return [layer.self_mixer for layer in model.encoder]
    return [layer.self_mixer if part == "decoder_self" else layer.cross_mixer for layer in model.decoder]


@torch.no_grad()
def sublayer_ms(model: Transformer, parts: Sequence[str], lengths: Sequence[int] = SUBLAYER_LENGTHS,
                batch: int = SUBLAYER_BATCH, repeats: int = 5) -> dict[str, float]:
    """Median wall time (ms) of one forward pass through the first layer's mixer of each part, summed
    over ``parts``, for ``batch`` random sentences of each length (the memory has the same length),
    in eval mode without gradients -> {"30": ms, "100": ms}. A "w/o" sublayer costs 0."""
    was_training = model.training
    model.eval()
    d = model.cfg.d_model
    gen = torch.Generator().manual_seed(0)
    out: dict[str, float] = {}
    try:
        for n in lengths:
            x = torch.randn(batch, n, d, generator=gen)
            total = 0.0
            for part in parts:
                mixer = _mixers(model, part)[0]
                if mixer is None:
                    continue
                kwargs = {"memory": x} if part == "cross" else {}
                mixer(x, **kwargs)  # warm-up
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    mixer(x, **kwargs)
                    times.append(time.perf_counter() - t0)
                total += statistics.median(times) * 1000
            out[str(n)] = round(total, 3)
    finally:
        model.train(was_training)
    return out
