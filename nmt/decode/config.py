"""Typed decoding options (the ``decode`` section of a config, and ``nmt translate`` flags)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nmt.config import ConfigError, field


@dataclass
class DecodeConfig:
    """How to turn a model into output sentences: beam search, greedy search or sampling.

    Defaults follow common practice for Transformer NMT (fairseq / Marian / CTranslate2): beam 5,
    GNMT length penalty alpha 0.6, output length at most ``1.2 * S + 10`` for a source of ``S``
    tokens. Forced-length benchmarks use ``max_len_a: 0, max_len_b: 32, min_len: 32``.
    """

    beam: int = field(5, help="beam size; 1 = greedy search")
    alpha: float = field(
        0.6, help="GNMT length penalty exponent: score = logprob / ((5+n)/6)^alpha; 0 = none"
    )
    max_len_a: float = field(
        1.2, help="output length limit = floor(max_len_a * S + max_len_b), S the source length"
    )
    max_len_b: int = field(10, help="additive term of the output length limit")
    max_len: int = field(1024, help="absolute cap on the output length (tokens, eos excluded)")
    min_len: int = field(0, help="eos is forbidden until a hypothesis has this many tokens")
    nbest: int = field(1, help="hypotheses returned per sentence (at most beam; samples when sampling)")
    early_stop: bool = field(
        True,
        help="beam: a sentence is done once beam hypotheses ended (fairseq/CTranslate2 rule); false = go on "
        "until no live hypothesis can beat them under the length penalty",
    )
    sampling: Literal["none", "topk", "topp"] = field(
        "none",
        help="none = search (beam/greedy); topk / topp = ancestral sampling from the top k / nucleus p",
    )
    k: int = field(10, help="top-k sampling: sample among the k most likely tokens")
    p: float = field(0.9, help="top-p (nucleus) sampling: smallest set of tokens with probability >= p")
    temperature: float = field(1.0, help="sampling temperature (logits are divided by it)")
    seed: int = field(0, help="random seed for sampling")

    def __post_init__(self) -> None:
        checks = [
            (self.beam >= 1, "decode.beam must be >= 1"),
            (self.nbest >= 1, "decode.nbest must be >= 1"),
            (
                self.sampling != "none" or self.nbest <= self.beam,
                f"decode.nbest ({self.nbest}) must be <= decode.beam ({self.beam})",
            ),
            (self.max_len >= 1, "decode.max_len must be >= 1"),
            (self.min_len >= 0, "decode.min_len must be >= 0"),
            (
                self.min_len <= self.max_len,
                f"decode.min_len ({self.min_len}) must be <= decode.max_len ({self.max_len}): no hypothesis could end",
            ),
            (self.max_len_a >= 0, "decode.max_len_a must be >= 0"),
            (self.k >= 1, "decode.k must be >= 1"),
            (0.0 < self.p <= 1.0, "decode.p must be in (0, 1]"),
            (self.temperature > 0.0, "decode.temperature must be > 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
