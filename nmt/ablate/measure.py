"""What a study measures on a finished run besides BLEU: FLOPs over the test set, training speed.

FLOPs: ``Transformer.flops(src_len, tgt_len)`` summed over the test sentences, with ``src_len`` the
tokenised source length plus ``</s>`` (what the encoder reads) and ``tgt_len`` the tokenised
*reference* length plus one (the teacher-forced decoder input ``<s> y``), so that every setting is
charged for the same lengths whatever it translates.

Training speed: the median of the ``train/tgt_tokens_per_s`` TensorBoard scalars of the run (each
one = target tokens / wall time over ``train.log_every_steps`` updates, validation excluded); the
first window (step 0, one batch with warm-up) is left out when later ones exist.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Sequence

from nmt.data.subwords import Vocab
from nmt.model.transformer import Transformer

TOKENS_PER_S_TAG = "train/tgt_tokens_per_s"


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


def train_tokens_per_s(tb_dir: str | Path) -> float | None:
    """Median training target tokens/s logged in the TensorBoard directory (None if never logged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = Path(tb_dir)
    if not path.is_dir():
        return None
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0})  # 0: keep every event
    acc.Reload()
    if TOKENS_PER_S_TAG not in acc.Tags().get("scalars", []):
        return None
    events = acc.Scalars(TOKENS_PER_S_TAG)
    values = [e.value for e in events if e.step > 0] or [e.value for e in events]
    return float(statistics.median(values))
