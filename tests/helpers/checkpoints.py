"""Checkpoints of randomly initialised tiny models, and a corpus whose subword model differs from the
synthetic one's at the same size: the material of the tests of what is refused (runs, vocabularies or
models mixed)."""

from __future__ import annotations

from pathlib import Path

import torch

from helpers.synthetic import synthetic_pairs
from nmt.checkpoint import Checkpoint, nmt_entry
from nmt.config import to_dict
from nmt.data.prepare import load_prepared
from nmt.experiment import ExperimentConfig
from nmt.model.transformer import Transformer

SHIFT = str.maketrans("abcdefghijkl", "mnopqrstuvwx")


def random_checkpoint(cfg: ExperimentConfig, path: Path, seed: int = 0) -> Path:
    """Write a checkpoint of a randomly initialised model of ``cfg`` over the subword model of its
    prepared data (prepared now if needed); returns ``path``."""
    vocab = load_prepared(cfg.data).vocab
    torch.manual_seed(seed)
    model = Transformer(cfg.model, vocab.src_size, vocab.tgt_size, vocab.pad_id)
    v = {"pad_id": vocab.pad_id, "bos_id": vocab.bos_id, "eos_id": vocab.eos_id, "unk_id": vocab.unk_id,
         "src_size": vocab.src_size, "tgt_size": vocab.tgt_size,
         "src_model": str(vocab.src_model_path), "tgt_model": str(vocab.tgt_model_path)}
    entry = nmt_entry(to_dict(cfg), v, None)
    Checkpoint(model.state_dict(), entry["config"], entry["vocab"], entry["subword"]).save(path)
    return path


def write_shifted_corpus(directory: Path, sizes: dict[str, int]) -> None:
    """The synthetic reverse corpus (``helpers.synthetic``) with the symbols a..l written as m..x: a
    subword model trained on it has the size of the original's, but its ids name other pieces."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, (split, n) in enumerate(sizes.items()):
        pairs = synthetic_pairs(n, seed=100 + i)
        (directory / f"{split}.src").write_text("".join(s.translate(SHIFT) + "\n" for s, _ in pairs), encoding="utf-8")
        (directory / f"{split}.tgt").write_text("".join(t.translate(SHIFT) + "\n" for _, t in pairs), encoding="utf-8")
