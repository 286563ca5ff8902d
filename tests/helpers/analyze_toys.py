"""Tiny hand-set models and batches for the analysis tests."""

from __future__ import annotations

import torch

from nmt.data.batch import Batch
from nmt.model.config import ModelConfig
from nmt.model.transformer import Transformer

V, PAD, BOS, EOS = 30, 0, 2, 3


def toy_model(layers: int = 2, mask: str = "1111", seed: int = 0, **kw) -> Transformer:
    """A tiny eval-mode Transformer with ``mask`` in every role (``kw``: other ModelConfig fields);
    parameters at their initial scale."""
    torch.manual_seed(seed)
    fields = dict(d_model=16, n_heads=2, d_ff=32, encoder_layers=layers, decoder_layers=layers, dropout=0.0,
                  encoder_self=mask, decoder_self=mask, cross=mask)
    cfg = ModelConfig(**{**fields, **kw})
    return Transformer(cfg, V, V, PAD).eval()


def toy_batch(B: int = 3, S: int = 7, T: int = 6, seed: int = 0) -> Batch:
    """Random tokens with right padding of different lengths on both sides."""
    g = torch.Generator().manual_seed(seed)
    src_len = torch.tensor([S, S - 2, S - 3])[:B]
    tgt_len = torch.tensor([T, T - 1, T - 3])[:B]
    src_mask = torch.arange(S)[None] >= src_len[:, None]
    tgt_mask = torch.arange(T)[None] >= tgt_len[:, None]
    src = torch.randint(4, V, (B, S), generator=g).masked_fill(src_mask, PAD)
    tgt_out = torch.randint(4, V, (B, T), generator=g).masked_fill(tgt_mask, PAD)
    tgt_in = torch.cat([torch.full((B, 1), BOS), tgt_out[:, :-1]], 1).masked_fill(tgt_mask, PAD)
    return Batch(src, src_mask, tgt_in, tgt_out, tgt_mask, torch.arange(B), int(src_len.sum()), int(tgt_len.sum()))
