"""Typed configuration of the data pipeline: the ``data:`` section of an experiment YAML."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from nmt.config import field

SPLITS = ("train", "valid", "test")


def _default_root() -> str:
    return os.environ.get("NMT_DATA_ROOT", "data")


@dataclass
class SubwordConfig:
    """SentencePiece model: trained on the training split, or an existing model used as is."""

    model_type: Literal["unigram", "bpe"] = field("unigram", help="SentencePiece algorithm: unigram or bpe")
    vocab_size: int = field(8000, help="vocabulary size per model, including the 4 special pieces")
    character_coverage: float = field(1.0, help="share of characters covered by the model (1.0 = all)")
    input_sentence_size: int = field(
        2_000_000, help="train SentencePiece on at most this many sampled sentences (0 = all)")
    joint: bool = field(True, help="one model shared by source and target (false: one model per side)")
    model: str | None = field(
        None, help="path of an existing SentencePiece model used as is for both sides (special ids read from it)")


@dataclass
class FilterConfig:
    """Rules that drop training pairs; every drop is counted per rule. Valid/test are never filtered."""

    drop_empty: bool = field(True, help="drop training pairs whose source or target line is empty or blank")
    min_len: int = field(1, help="drop training pairs with a side shorter than this many subword tokens")
    max_len: int = field(250, help="drop training pairs with a side longer than this many subword tokens (0 = off)")
    max_ratio: float = field(
        0.0, help="drop training pairs whose longer side has more than this times the tokens of the shorter (0 = off)")


@dataclass
class BatchConfig:
    """Token-budget batching."""

    max_tokens: int = field(
        4096, help="max padded tokens per batch on each side: n_sentences * longest (with </s>) <= max_tokens")
    max_sentences: int = field(0, help="max sentences per batch (0 = no limit)")
    eval_max_tokens: int = field(0, help="max_tokens for valid/test batches (0 = same as max_tokens)")
    bucketing: bool = field(True, help="group training sentences of similar length (sort, chunk, shuffle batches)")
    seed: int = field(1234, help="seed of the per-epoch shuffling")
    num_workers: int = field(0, help="DataLoader worker processes (0 = load in the training process)")


@dataclass
class DataConfig:
    """Where the parallel corpus comes from, how it is split into subwords, filtered and batched."""

    root: str = field(default_factory=_default_root,
                      help="directory holding one folder per corpus (default: $NMT_DATA_ROOT or 'data')")
    corpus: str = field("multi30k", help="corpus folder under root (raw text lives in <root>/<corpus>/)")
    source: Literal["local", "hf"] = field(
        "local", help="local: plain text files PREFIX.LANG; hf: a Hugging Face dataset exported once to text")
    hf_name: str | None = field(
        None, help="Hugging Face dataset (wmt14, wmt16, iwslt2017, bentrevett/multi30k) or a save_to_disk folder")
    hf_config: str | None = field(None, help="Hugging Face dataset config, e.g. de-en or iwslt2017-en-de")
    src_lang: str = field("en", help="source language code (file suffix / column or translation key)")
    tgt_lang: str = field("de", help="target language code (file suffix / column or translation key)")
    splits: dict[str, str] = field(
        default_factory=lambda: {"train": "train", "valid": "val", "test": "test_2016_flickr"},
        help="train/valid/test -> file prefix in the corpus folder (local) or split name (hf)")
    valid_sacrebleu: str | None = field(
        None, help="sacrebleu test set used as the valid split instead (e.g. wmt13)")
    test_sacrebleu: str | None = field(
        None, help="sacrebleu test set used as the test split instead (e.g. wmt14/full)")
    max_train_pairs: int = field(0, help="use only the first N training pairs (0 = all); for quick runs")
    prepared_dir: str = field(
        "data/prepared", help="where subword models and binarized splits are cached (<prepared_dir>/<corpus>/...)")
    subword: SubwordConfig = field(default_factory=SubwordConfig, help="SentencePiece options")
    filter: FilterConfig = field(default_factory=FilterConfig, help="training-pair filters")
    batch: BatchConfig = field(default_factory=BatchConfig, help="batching options")
