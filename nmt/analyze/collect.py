"""Teacher-forced passes over a split that collect per-term statistics and per-term attention maps."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import Tensor

from nmt.analyze.sites import Site, attention_sites, capturing
from nmt.analyze.terms import TermStats
from nmt.data.batch import Batch, PairDataset
from nmt.data.batching import EvalBatchSampler
from nmt.model.transformer import Transformer


def split_batches(dm: Any, split: str, max_sentences: int, max_tokens: int) -> Iterator[Batch]:
    """Length-sorted batches of the first ``max_sentences`` sentences of ``split`` (0: all) of the
    data module ``dm``; ``batch.ids`` index ``dm.references(split)``."""
    dm.references(split)  # a clear error for a missing split
    enc = dm.data.splits[split]
    n = len(enc) if max_sentences <= 0 else min(max_sentences, len(enc))
    v = dm.vocab
    dataset = PairDataset(enc, v.pad_id, v.bos_id, v.eos_id)
    sampler = EvalBatchSampler(np.asarray(enc.src_len[:n]) + 1, np.asarray(enc.tgt_len[:n]) + 1, max_tokens)
    for indices in sampler:
        yield dataset.collate(indices)


def query_real(site: Site, batch: Batch) -> Tensor:
    """(B, T) True at the real query positions of ``site``'s role: source tokens for the encoder,
    target tokens (teacher-forced decoder input) for the decoder and cross roles."""
    return ~(batch.src_padding_mask if site.role == "encoder" else batch.tgt_padding_mask)


@torch.no_grad()
def term_statistics(model: Transformer, batches: Iterable[Batch]) -> dict[str, dict[str, Any]]:
    """``TermStats.result()`` of every factored-attention module (``Site.name`` -> result) over
    teacher-forced ``batches``, for the terms each module computes now (``active_mask``)."""
    sites = attention_sites(model)
    stats = {s.name: TermStats(s.terms) for s in sites}
    current: list[Batch] = []

    def sink(site: Site, terms: dict[str, Tensor], allowed: Tensor) -> None:
        stats[site.name].add(terms, allowed, query_real(site, current[0]))

    with capturing(sites, sink):
        for batch in batches:
            current[:] = [batch]
            model(batch.src, batch.src_padding_mask, batch.tgt_in)
    return {name: s.result() for name, s in stats.items()}


@torch.no_grad()
def term_maps(model: Transformer, batch: Batch) -> dict[str, list[dict[str, Tensor]]]:
    """Head-averaged attention maps of every sentence of ``batch`` per factored-attention module:
    {site name: [{"E1": (T, S), ..., "all": (T, S)} per sentence]}, where "Ei" is softmax(E_i) alone
    over the allowed keys and "all" softmax of the sum (the model's weights); real rows and columns only."""
    out: dict[str, list[dict[str, Tensor]]] = {}

    def sink(site: Site, terms: dict[str, Tensor], allowed: Tensor) -> None:
        B = batch.src.size(0)
        ok = allowed.expand(B, 1, *allowed.shape[-2:])
        panels = {**terms, "all": torch.stack(list(terms.values())).sum(0)}
        weights = {k: v.float().masked_fill(~ok, float("-inf")).softmax(-1).nan_to_num(0.0).mean(1)
                   for k, v in panels.items()}  # (B, T, S)
        rows_pad = batch.src_padding_mask if site.role == "encoder" else batch.tgt_padding_mask
        cols_pad = batch.tgt_padding_mask if site.role == "decoder" else batch.src_padding_mask
        sentences = []
        for b in range(B):
            r, c = int((~rows_pad[b]).sum()), int((~cols_pad[b]).sum())
            sentences.append({k: w[b, :r, :c].cpu() for k, w in weights.items()})
        out[site.name] = sentences

    with capturing(attention_sites(model), sink):
        model(batch.src, batch.src_padding_mask, batch.tgt_in)
    return out
