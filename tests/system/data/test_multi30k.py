"""Integration: prepare a slice of the real Multi30k (../shared/data) and batch it."""

from __future__ import annotations

import pytest
from helpers.paths import SHARED_DATA

from nmt.data.config import DataConfig, SubwordConfig
from nmt.data.datamodule import NMTDataModule
from nmt.data.prepare import prepare

MULTI30K = SHARED_DATA / "multi30k"


@pytest.mark.skipif(not (MULTI30K / "train.en").is_file(),
                    reason=f"real data not found at {MULTI30K} (set NMT_SHARED_DATA to the shared data folder)")
def test_prepare_multi30k_slice(tmp_path):
    cfg = DataConfig(root=str(SHARED_DATA), corpus="multi30k", prepared_dir=str(tmp_path), max_train_pairs=2000,
                     subword=SubwordConfig(vocab_size=1000))
    summary = prepare(cfg, progress=False)
    assert summary.splits["train"].sentences == 2000
    assert summary.splits["valid"].sentences == 1014 and summary.splits["test"].sentences == 1000
    dm = NMTDataModule(cfg)
    refs = dm.references("test")
    assert refs[0] == (MULTI30K / "test_2016_flickr.de").read_text(encoding="utf-8").split("\n")[0]
    batch = next(iter(dm.test_dataloader()))
    assert batch.src.shape[0] * batch.src.shape[1] <= cfg.batch.max_tokens
    assert sorted(i for b in dm.train_dataloader() for i in b.ids.tolist()) == list(range(2000))
    assert prepare(cfg, progress=False).splits["train"].cached
