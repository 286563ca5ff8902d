"""Shared fixtures: a synthetic reverse-translation corpus and tiny experiment configs over it."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Callable

import pytest

from nmt.config import from_dict
from nmt.experiment import ExperimentConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NMT_SHARED_DATA", REPO.parent / "shared" / "data"))
SYMBOLS = "a b c d e f g h i j k l".split()


def synthetic_pairs(n: int, seed: int, task: str = "reverse", lo: int = 3, hi: int = 8) -> list[tuple[str, str]]:
    """Random symbol sequences and their reversal or copy (the target): tasks a tiny model learns exactly."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = [rng.choice(SYMBOLS) for _ in range(rng.randint(lo, hi))]
        target = list(reversed(words)) if task == "reverse" else words
        pairs.append((" ".join(words), " ".join(target)))
    return pairs


def write_synthetic_corpus(directory: Path, sizes: dict[str, int], task: str = "reverse") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i, (split, n) in enumerate(sizes.items()):
        pairs = synthetic_pairs(n, seed=100 + i, task=task)
        (directory / f"{split}.src").write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
        (directory / f"{split}.tgt").write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")


@pytest.fixture(scope="session")
def reverse_root(tmp_path_factory) -> Path:
    """``<root>/{reverse,copy}/{train,valid,test}.{src,tgt}``: 2000 / 100 / 100 pairs each."""
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_corpus(root / "reverse", {"train": 2000, "valid": 100, "test": 100})
    write_synthetic_corpus(root / "copy", {"train": 2000, "valid": 100, "test": 100}, task="copy")
    return root


def tiny_experiment(root: Path, out: Path, **sections: dict[str, Any]) -> ExperimentConfig:
    """A tiny model on the reverse corpus; ``sections`` update the defaults per section."""
    cfg: dict[str, dict[str, Any]] = {
        "data": {
            "root": str(root), "corpus": "reverse", "src_lang": "src", "tgt_lang": "tgt",
            "prepared_dir": str(root / "prepared"),
            "splits": {"train": "train", "valid": "valid", "test": "test"},
            "subword": {"vocab_size": 24, "model_type": "bpe"},
            "batch": {"max_tokens": 600},
        },
        "model": {"d_model": 32, "n_heads": 2, "d_ff": 64, "encoder_layers": 1, "decoder_layers": 1,
                  "dropout": 0.0},
        "optim": {"lr": 3e-3, "warmup_steps": 20},
        "train": {"output_dir": str(out), "max_steps": 10, "val_every_steps": 5, "accelerator": "cpu",
                  "devices": 1, "heatmap_sentences": 1, "log_every_steps": 1, "val_max_sentences": 20},
        "decode": {"beam": 2},
    }
    for name, values in sections.items():
        cfg[name] = {**cfg.get(name, {}), **values}
    return from_dict(ExperimentConfig, cfg)


@pytest.fixture
def make_experiment(reverse_root, tmp_path) -> Callable[..., ExperimentConfig]:
    """``make_experiment(name, **sections)`` -> a tiny config writing to ``tmp_path/name``."""

    def make(name: str = "run", **sections: dict[str, Any]) -> ExperimentConfig:
        return tiny_experiment(reverse_root, tmp_path / name, **sections)

    return make


@pytest.fixture(scope="session")
def trained_tiny(reverse_root, tmp_path_factory) -> Path:
    """A tiny model trained on the copy task until it copies nearly every sentence (validation BLEU
    ~95 at step 300), with its 3 best checkpoints by validation BLEU and last.ckpt under
    ``<run>/checkpoints``; shared by the int8, export and model-selection tests (trained once)."""
    from nmt.train.fit import fit

    out = tmp_path_factory.mktemp("trained_tiny") / "run"
    cfg = tiny_experiment(
        reverse_root, out, data={"corpus": "copy", "batch": {"max_tokens": 1200}},
        model={"d_model": 64, "n_heads": 4, "d_ff": 128, "encoder_layers": 2, "decoder_layers": 2},
        optim={"lr": 5e-3, "warmup_steps": 50},
        train={"max_steps": 300, "val_every_steps": 75, "save_top_k": 3, "heatmap_sentences": 0, "log_every_steps": 100,
               "num_threads": 2},  # the same model whatever thread count earlier tests left
    )
    fit(cfg, enable_progress_bar=False)
    return out
