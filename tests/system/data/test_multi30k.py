"""The real Multi30k (../shared/data): a slice prepared and batched as the configs read it, and the
text path that validation and test BLEU rely on, checked for quality on the real test set."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.paths import SHARED_DATA

from nmt.data.config import DataConfig, FilterConfig, SubwordConfig
from nmt.data.datamodule import NMTDataModule
from nmt.data.prepare import load_prepared, prepare
from nmt.eval.score import score

MULTI30K = SHARED_DATA / "multi30k"
pytestmark = pytest.mark.skipif(not (MULTI30K / "train.en").is_file(),
                                reason=f"real data not found at {MULTI30K} (set NMT_SHARED_DATA to the shared data folder)")


@pytest.fixture(scope="module")
def cfg(tmp_path_factory) -> DataConfig:
    """The first 2,000 training pairs with the length filters of configs/multi30k_small.yaml, prepared once."""
    cfg = DataConfig(root=str(SHARED_DATA), corpus="multi30k", prepared_dir=str(tmp_path_factory.mktemp("prepared")),
                     max_train_pairs=2000, subword=SubwordConfig(vocab_size=1000),
                     filter=FilterConfig(max_len=100, max_ratio=3.0))
    prepare(cfg, progress=False)
    return cfg


def test_prepare_multi30k_slice(cfg):
    summary = prepare(cfg, progress=False)
    assert summary.splits["train"].cached
    assert summary.splits["train"].input_pairs == 2000
    assert summary.splits["valid"].sentences == 1014 and summary.splits["test"].sentences == 1000
    dm = NMTDataModule(cfg)
    refs = dm.references("test")
    assert refs == Path(MULTI30K / "test_2016_flickr.de").read_text(encoding="utf-8").splitlines()
    batch = next(iter(dm.test_dataloader()))
    assert batch.src.shape[0] * batch.src.shape[1] <= cfg.batch.max_tokens
    kept = summary.splits["train"].sentences
    assert sorted(i for b in dm.train_dataloader() for i in b.ids.tolist()) == list(range(kept))


def test_length_filters_keep_nearly_every_real_pair(cfg):
    train = prepare(cfg, progress=False).splits["train"]
    assert sum(train.filtered.values()) <= 0.01 * train.input_pairs, train.filtered


def test_a_perfect_system_scores_near_100_through_the_subword_round_trip(cfg):
    """References encoded and decoded as hypotheses are: what is lost is only characters unseen in training."""
    data = load_prepared(cfg)
    refs = data.target_text("test")
    hyps = [data.vocab.decode_tgt(ids) for ids in data.vocab.encode_tgt(refs)]
    exact = sum(h == r for h, r in zip(hyps, refs)) / len(refs)
    (bleu,) = score(hyps, refs, metrics=("bleu",))
    assert exact >= 0.98, [(h, r) for h, r in zip(hyps, refs) if h != r][:3]
    assert bleu.score >= 99.0
