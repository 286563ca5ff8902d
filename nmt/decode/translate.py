"""``translate_batch``: encode a source batch once and decode it as ``DecodeConfig`` says."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nmt.decode.beam import beam_search
from nmt.decode.config import DecodeConfig
from nmt.decode.greedy import greedy_search
from nmt.decode.hypothesis import Hypothesis, max_lengths
from nmt.decode.protocol import Seq2Seq
from nmt.decode.sampling import sample


def translate_batch(
    model: Seq2Seq,
    src: Tensor,
    src_padding_mask: Tensor,
    cfg: DecodeConfig,
    bos: int,
    eos: int,
    pad: int,
) -> list[list[Hypothesis]]:
    """Translate source tokens (B, S) with padding mask (B, S) (True at padding) -> per sentence,
    in input order, ``cfg.nbest`` hypotheses sorted by score (tokens without bos/eos).

    Sampling when ``cfg.sampling`` is not ``"none"``, else greedy search for ``beam == 1`` and beam
    search otherwise. An ``nn.Module`` model is switched to eval mode for the call.
    """
    if src.shape != src_padding_mask.shape:
        raise ValueError(
            f"src {tuple(src.shape)} and src_padding_mask {tuple(src_padding_mask.shape)} differ"
        )
    was_training = isinstance(model, nn.Module) and model.training
    if was_training:
        model.eval()
    try:
        with torch.inference_mode():
            return _translate(model, src, src_padding_mask, cfg, bos, eos, pad)
    finally:
        if was_training:
            model.train()


def _translate(
    model: Seq2Seq, src: Tensor, mask: Tensor, cfg: DecodeConfig, bos: int, eos: int, pad: int
) -> list[list[Hypothesis]]:
    src_lengths = (~mask).sum(dim=1)  # (B,) true source lengths
    limits = max_lengths(src_lengths, cfg.max_len_a, cfg.max_len_b, cfg.max_len)  # (B,)
    state = model.init_state(model.encode(src, mask), mask)
    common = {"bos": bos, "eos": eos, "pad": pad, "alpha": cfg.alpha, "min_len": cfg.min_len}
    if cfg.sampling != "none":
        return sample(
            model,
            state,
            limits,
            method=cfg.sampling,
            k=cfg.k,
            p=cfg.p,
            temperature=cfg.temperature,
            seed=cfg.seed,
            nbest=cfg.nbest,
            **common,
        )
    if cfg.beam == 1:
        return [[h] for h in greedy_search(model, state, limits, **common)]
    return beam_search(
        model, state, limits, beam=cfg.beam, nbest=cfg.nbest, early_stop=cfg.early_stop, **common
    )
