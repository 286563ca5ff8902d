"""What a study measures on a finished run besides BLEU: FLOPs over the test set, and the measured
forward time of the varied attention sublayers.

FLOPs: ``Transformer.flops(src_len, tgt_len)`` summed over the test sentences, with ``src_len`` the
tokenised source length plus ``</s>`` (what the encoder reads) and ``tgt_len`` the tokenised
*reference* length plus one (the teacher-forced decoder input ``<s> y``), so that every setting is
charged for the same lengths whatever it translates.
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


def corpus_flops(model: Transformer, vocab: Vocab, sources: Sequence[str], references: Sequence[str]) -> dict[str, int]:
    """Sum over sentence pairs of ``model.flops(src_len, tgt_len)`` (per part and "total")."""
    if len(sources) != len(references):
        raise ValueError(f"{len(sources)} sources but {len(references)} references")
    src_lens = [len(ids) + 1 for ids in vocab.encode_src(list(sources))]
    tgt_lens = [len(ids) + 1 for ids in vocab.encode_tgt(list(references))]
    totals: Counter[str] = Counter()
    for (s, t), count in Counter(zip(src_lens, tgt_lens)).items():  # each distinct length pair once
        for part, value in model.flops(s, t).items():
            totals[part] += count * int(value)
    return dict(totals)


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
