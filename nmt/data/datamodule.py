"""``NMTDataModule``: prepared splits as Lightning train/valid/test loaders, plus raw text for BLEU."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from nmt.data.batch import PairDataset, unwrap
from nmt.data.batching import EvalBatchSampler, TrainBatchSampler
from nmt.data.config import DataConfig
from nmt.data.errors import DataError
from nmt.data.prepare import PreparedData, load_prepared, prepare
from nmt.data.sources import HFLoader
from nmt.data.subwords import Vocab


class ResumableDataLoader(DataLoader):
    """A DataLoader whose ``state_dict`` is its train sampler's position, so Lightning treats it as
    resumable; the position comes from the DataModule (batches the trainer actually processed)."""

    def __init__(self, *args: Any, datamodule: NMTDataModule, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._datamodule = datamodule

    def state_dict(self) -> dict:
        return self._datamodule.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self._datamodule.load_state_dict(state)


class NMTDataModule(L.LightningDataModule):
    """Loaders over the prepared data of ``cfg``; rank and world size come from ``self.trainer`` if attached.

    Create the Trainer with ``use_distributed_sampler=False``: sharding is done here.
    """

    def __init__(self, cfg: DataConfig, hf_loader: HFLoader | None = None):
        super().__init__()
        self.cfg = cfg
        self._hf_loader = hf_loader
        self._data: PreparedData | None = None
        self._train_sampler: TrainBatchSampler | None = None
        self._pending_state: dict | None = None
        self._text: dict[tuple[str, str], list[str]] = {}

    # ------------------------------------------------------------------ preparation
    def prepare_data(self) -> None:
        """Prepare (or reuse) the data; Lightning runs this on one process per node."""
        prepare(self.cfg, progress=False, hf_loader=self._hf_loader)

    def setup(self, stage: str | None = None) -> None:
        """Load the prepared data (preparing what is missing)."""
        if self._data is None:
            self._data = load_prepared(self.cfg, hf_loader=self._hf_loader)

    @property
    def data(self) -> PreparedData:
        """The prepared data (loaded on first use)."""
        self.setup()
        assert self._data is not None
        return self._data

    @property
    def vocab(self) -> Vocab:
        """Subword models and special ids."""
        return self.data.vocab

    # ------------------------------------------------------------------ loaders
    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def _dataset(self, split: str) -> PairDataset:
        if split not in self.data.splits:
            raise DataError(f"no {split!r} split: set data.splits.{split} (or data.{split}_sacrebleu)")
        v = self.vocab
        return PairDataset(self.data.splits[split], v.pad_id, v.bos_id, v.eos_id)

    def _loader(self, dataset: PairDataset, batch_sampler: Any, cls: type = DataLoader, **kwargs: Any) -> DataLoader:
        workers = self.cfg.batch.num_workers
        # Its own generator: starting an iteration (every epoch, every validation) draws the workers'
        # base seed from it instead of from the global torch RNG, which dropout uses. So validating or
        # not leaves the dropout stream unchanged and a resumed run continues it exactly.
        generator = torch.Generator().manual_seed(self.cfg.batch.seed)
        return cls(dataset, batch_sampler=batch_sampler, collate_fn=unwrap, num_workers=workers,
                   persistent_workers=workers > 0, generator=generator, **kwargs)

    def train_sampler(self) -> TrainBatchSampler:
        """The (single, stateful) training batch sampler of this rank."""
        rank, world = self._rank_world()
        s = self._train_sampler
        if s is None or (s.rank, s.world_size) != (rank, world):
            split = self.data.splits["train"]
            b = self.cfg.batch
            s = TrainBatchSampler(split.src_len + 1, split.tgt_len + 1, b.max_tokens, b.max_sentences,
                                  seed=b.seed, bucketing=b.bucketing, rank=rank, world_size=world)
            if self._train_sampler is not None:
                s.load_state_dict(self._train_sampler.state_dict())
            self._train_sampler = s
        if self._pending_state is not None:
            s.load_state_dict(self._pending_state)
            self._pending_state = None
        return s

    def train_dataloader(self) -> DataLoader:
        """Shuffled, bucketed token-budget batches of this rank (resumable)."""
        return self._loader(self._dataset("train"), self.train_sampler(), ResumableDataLoader, datamodule=self)

    def eval_dataloader(self, split: str) -> DataLoader:
        """Length-sorted batches of ``split`` for this rank; every sentence once across ranks."""
        rank, world = self._rank_world()
        dataset = self._dataset(split)
        s = self.data.splits[split]
        b = self.cfg.batch
        self.check_eval_lengths(split)
        sampler = EvalBatchSampler(s.src_len + 1, s.tgt_len + 1, b.eval_max_tokens or b.max_tokens,
                                   b.max_sentences, rank=rank, world_size=world)
        return self._loader(dataset, sampler)

    def check_eval_lengths(self, split: str, shown: int = 5) -> None:
        """Raise DataError naming the split, file and lines of sentences too long for one evaluation
        batch. Valid/test sentences are never filtered, so the advice is about the files or the budget."""
        s = self.data.splits[split]
        b = self.cfg.batch
        budget = b.eval_max_tokens or b.max_tokens
        over = np.flatnonzero((s.src_len + 1 > budget) | (s.tgt_len + 1 > budget))  # lengths with </s>
        if not over.size:
            return
        files = self.data.files[split]
        key = "data.batch.eval_max_tokens" if b.eval_max_tokens else "data.batch.max_tokens (or set data.batch.eval_max_tokens)"
        lines = ", ".join(f"line {int(s.line[i]) + 1} ({int(s.src_len[i]) + 1} source / {int(s.tgt_len[i]) + 1} target"
                          f" tokens)" for i in over[:shown])
        more = f" and {over.size - shown} more" if over.size > shown else ""
        raise DataError(
            f"{split} split ({files.src}, {files.tgt}): {lines}{more} longer than the evaluation batch budget of"
            f" {budget} tokens (with </s>). data.filter does not apply to {split} (only training pairs are"
            f" filtered): truncate or remove these lines in both files, or raise {key}")

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("valid")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    # ------------------------------------------------------------------ raw text for BLEU
    def references(self, split: str) -> list[str]:
        """Raw target lines of ``split``; ``references(split)[i]`` belongs to ``batch.ids == i``."""
        return self._raw(split, "tgt")

    def sources(self, split: str) -> list[str]:
        """Raw source lines of ``split``, indexed like ``references``."""
        return self._raw(split, "src")

    def _raw(self, split: str, side: str) -> list[str]:
        if split not in self.data.splits:
            raise DataError(f"no {split!r} split: set data.splits.{split} (or data.{split}_sacrebleu)")
        if (split, side) not in self._text:
            text = self.data.target_text(split) if side == "tgt" else self.data.source_text(split)
            self._text[(split, side)] = text
        return self._text[(split, side)]

    # ------------------------------------------------------------------ resume
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Lightning's hook for every batch the loop takes from a loader: counts the training ones, so
        that the resume position excludes batches the loader prefetched but the trainer never used."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.training and self._train_sampler is not None:
            self._train_sampler.mark_used()
        return batch

    def state_dict(self) -> dict:
        """Train-order position: epoch and batches of it the trainer took (without a trainer: handed out)."""
        if self._train_sampler is None:
            return dict(self._pending_state or {})
        return self._train_sampler.state_dict(used=getattr(self, "trainer", None) is not None)

    def load_state_dict(self, state: dict) -> None:
        """Resume the training order at ``state`` (applied to the train sampler when it exists)."""
        if not state:
            return
        if self._train_sampler is not None:
            self._train_sampler.load_state_dict(state)
        else:
            self._pending_state = dict(state)
