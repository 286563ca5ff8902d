"""Tiny Transformers of mixed mechanism specs and a padded batch for them, shared by the model tests."""

from __future__ import annotations

import torch

from nmt.model.config import ModelConfig
from nmt.model.transformer import Transformer

V, PAD = 40, 0


def tiny(**kw) -> ModelConfig:
    base = dict(d_model=16, n_heads=2, d_ff=32, encoder_layers=2, decoder_layers=2, dropout=0.0)
    base.update(kw)
    return ModelConfig(**base)


def seeded(**kw) -> Transformer:
    """A tiny Transformer built after ``torch.manual_seed(0)`` (the same weights every time)."""
    torch.manual_seed(0)
    return Transformer(tiny(**kw), V, V, PAD)


def batch(B=3, S=7, T=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, V, (B, S), generator=g)
    smask = torch.zeros(B, S, dtype=torch.bool)
    smask[0, S - 2:] = True
    smask[1, S - 4:] = True
    src[smask] = PAD
    tgt = torch.randint(4, V, (B, T), generator=g)
    return src, smask, tgt


MIXED = [
    dict(encoder_self="1000", decoder_self="1000", cross="1000"),
    dict(encoder_self=["0110", "dynamic:k=3"], decoder_self=["lightweight:k=3", "1111:w=2"], cross="1111"),
    dict(encoder_self="0010+deformable", decoder_self="0010+deformable", cross=["1000", "deformable"]),
    dict(encoder_self="salient:k=3", decoder_self="w/o", cross="salient:frac=0.5"),
    dict(encoder_self="deformable>0010", decoder_self="0110", cross="1000:offset=aligned,ratio=1.2"),
    dict(encoder_self="0010&deform_conv:groups=2,modulation=on", decoder_self="0010&deform_attn",
         cross="deform_conv:k=3,modulation=on"),
    dict(encoder_self="deform_conv:dilation=2", decoder_self="deform_conv:groups=2>0010", cross="0010&deform_attn:k=3"),
]
