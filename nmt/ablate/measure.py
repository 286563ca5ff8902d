"""What a study measures on a finished run besides BLEU: FLOPs over the test set.

FLOPs: ``Transformer.flops(src_len, tgt_len)`` summed over the test sentences, with ``src_len`` the
tokenised source length plus ``</s>`` (what the encoder reads) and ``tgt_len`` the tokenised
*reference* length plus one (the teacher-forced decoder input ``<s> y``), so that every setting is
charged for the same lengths whatever it translates.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from nmt.data.subwords import Vocab
from nmt.model.transformer import Transformer


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
