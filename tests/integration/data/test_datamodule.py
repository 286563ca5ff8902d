"""NMTDataModule: Batch contents and conventions, device transfer, raw text, sharding and resume (in Lightning)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from nmt.data.batch import Batch
from nmt.data.config import BatchConfig
from nmt.data.datamodule import NMTDataModule
from nmt.data.errors import DataError


def test_batches_follow_sequence_conventions(toy):
    toy.batch.max_tokens = 200
    dm = NMTDataModule(toy)
    v = dm.vocab
    seen = []
    for batch in dm.train_dataloader():
        assert isinstance(batch, Batch)
        B, S = batch.src.shape
        T = batch.tgt_in.shape[1]
        assert batch.src.dtype == torch.long and batch.src_padding_mask.dtype == torch.bool
        assert B * S <= 200 and B * T <= 200 and batch.tgt_out.shape == (B, T)
        src_len = (~batch.src_padding_mask).sum(1)
        tgt_len = (~batch.tgt_padding_mask).sum(1)
        assert batch.n_src_tokens == int(src_len.sum()) and batch.n_tgt_tokens == int(tgt_len.sum())
        assert (batch.src[batch.src_padding_mask] == v.pad_id).all()
        assert (batch.tgt_out[batch.tgt_padding_mask] == v.pad_id).all()
        assert (batch.tgt_in[:, 0] == v.bos_id).all()
        for b in range(B):
            n, m = int(src_len[b]), int(tgt_len[b])
            assert batch.src[b, n - 1] == v.eos_id and batch.tgt_out[b, m - 1] == v.eos_id
            assert torch.equal(batch.tgt_in[b, 1:m], batch.tgt_out[b, :m - 1])
            i = int(batch.ids[b])
            assert v.decode_tgt(batch.tgt_out[b].tolist()) == dm.data.target_text("train")[i]
        seen.extend(batch.ids.tolist())
    assert sorted(seen) == list(range(300))


def test_eval_loaders_and_raw_text(toy):
    dm = NMTDataModule(toy)
    ids = [i for b in dm.val_dataloader() for i in b.ids.tolist()]
    assert sorted(ids) == list(range(40))
    assert len(dm.references("test")) == 30 and len(dm.sources("test")) == 30
    refs = dm.references("valid")
    batch = next(iter(dm.val_dataloader()))
    assert dm.vocab.decode_tgt(batch.tgt_out[0].tolist()) == refs[int(batch.ids[0])]


def test_batch_moves_with_lightning_transfer(toy):
    batch = next(iter(NMTDataModule(toy).val_dataloader()))
    moved = move_data_to_device(batch, torch.device("meta"))
    assert isinstance(moved, Batch) and moved.src.device.type == "meta" and moved.ids.device.type == "meta"
    assert moved.n_src_tokens == batch.n_src_tokens and batch.src.device.type == "cpu"


def test_ranks_from_trainer_are_disjoint_and_equal(toy):
    toy.batch.max_tokens = 150
    per_rank = []
    for rank in range(2):
        dm = NMTDataModule(toy)
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        per_rank.append([b.ids.tolist() for b in dm.train_dataloader()])
        ev = [i for b in dm.test_dataloader() for i in b.ids.tolist()]
        per_rank[-1].append(ev)
    assert len(per_rank[0]) == len(per_rank[1])
    train = [i for r in per_rank for b in r[:-1] for i in b]
    assert sorted(train) == list(range(300))
    assert sorted(per_rank[0][-1] + per_rank[1][-1]) == list(range(30))


def test_datamodule_state_resumes_order(toy):
    toy.batch.max_tokens = 150
    dm = NMTDataModule(toy)
    full = [b.ids.tolist() for b in dm.train_dataloader()]
    it = iter(dm.train_dataloader())
    for _ in range(4):
        next(it)
    state = dm.state_dict()
    assert state["consumed"] == 4
    dm2 = NMTDataModule(toy)
    dm2.load_state_dict(state)
    assert [b.ids.tolist() for b in dm2.train_dataloader()] == full[4:]


class Recorder(L.LightningModule):
    """Records the sentence ids of every training batch with its epoch."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[int, list[int]]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append((self.current_epoch, batch.ids.tolist()))
        return (self.w * batch.src.float().mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def trainer(tmp_path, **kw) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, use_distributed_sampler=False, logger=False,
                     enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                     limit_val_batches=0, default_root_dir=str(tmp_path), **kw)


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "worker-prefetching"])
def test_lightning_epochs_and_mid_epoch_resume(toy, tmp_path, workers):
    """Resumes where the trainer stopped, not where the loader's workers had prefetched to."""
    toy.batch.max_tokens = 250
    toy.batch.num_workers = workers
    ref = Recorder()
    trainer(tmp_path, max_epochs=2, enable_checkpointing=False).fit(ref, datamodule=NMTDataModule(toy))
    epochs = [[i for e, ids in ref.seen if e == k for i in ids] for k in (0, 1)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(300)) and epochs[0] != epochs[1]
    n0 = sum(1 for e, _ in ref.seen if e == 0)

    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", every_n_train_steps=n0 + 3, save_top_k=-1)
    first = Recorder()
    trainer(tmp_path, max_epochs=2, max_steps=n0 + 3, callbacks=[ckpt]).fit(first, datamodule=NMTDataModule(toy))
    path = next((tmp_path / "ck").glob("*.ckpt"))
    resumed = Recorder()
    trainer(tmp_path, max_epochs=2, enable_checkpointing=False).fit(
        resumed, datamodule=NMTDataModule(toy), ckpt_path=str(path))
    assert first.seen + resumed.seen == ref.seen


def test_worker_processes(toy):
    toy.batch.num_workers = 1
    dm = NMTDataModule(toy)
    assert sorted(i for b in dm.train_dataloader() for i in b.ids.tolist()) == list(range(300))


@pytest.mark.parametrize("split", ["valid", "test"])
def test_too_long_eval_sentence_names_split_file_and_line_and_what_helps(toy, split):
    """Valid/test are never filtered: a sentence over the evaluation budget is an error that names the
    split, its files and lines, and advises editing the files or raising the budget (not data.filter)."""
    for side in ("en", "de"):
        path = Path(toy.root) / "toy" / f"{split}.{side}"
        lines = path.read_text(encoding="utf-8").split("\n")
        lines[11] = " ".join(["water"] * 5000)  # line 12
        path.write_text("\n".join(lines), encoding="utf-8")
    dm = NMTDataModule(dataclasses.replace(toy, batch=BatchConfig(max_tokens=600)))
    with pytest.raises(DataError) as err:
        dm.eval_dataloader(split)
    msg = str(err.value)
    assert f"{split} split" in msg and f"{split}.en" in msg and "line 12 (" in msg, msg
    assert "data.batch.eval_max_tokens" in msg and "truncate or remove" in msg and "lower data.filter" not in msg
    other = "test" if split == "valid" else "valid"
    assert len(dm.eval_dataloader(other)) > 0  # the other split is fine
    raised = NMTDataModule(dataclasses.replace(toy, batch=BatchConfig(max_tokens=600, eval_max_tokens=20000)))
    assert sum(len(b) for b in raised.eval_dataloader(split).batch_sampler) == (40 if split == "valid" else 30)
