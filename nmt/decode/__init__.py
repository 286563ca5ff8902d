"""nmt.decode: beam search, greedy search, sampling and ensembles over the ``Seq2Seq`` step contract."""

from nmt.decode.beam import beam_search
from nmt.decode.config import DecodeConfig
from nmt.decode.ensemble import EnsembleModel
from nmt.decode.greedy import greedy_search
from nmt.decode.hypothesis import Hypothesis, length_penalty, max_lengths
from nmt.decode.protocol import Seq2Seq
from nmt.decode.rescore import sequence_logprobs
from nmt.decode.sampling import Sampler, sample
from nmt.decode.translate import translate_batch

__all__ = [
    "DecodeConfig",
    "EnsembleModel",
    "Hypothesis",
    "Sampler",
    "Seq2Seq",
    "beam_search",
    "greedy_search",
    "length_penalty",
    "max_lengths",
    "sample",
    "sequence_logprobs",
    "translate_batch",
]
