"""The test tiers, and shared fixtures: a synthetic reverse-translation corpus, tiny experiment
configs over it, and a toy word corpus for the data pipeline.

Every test is marked with its tier, the folder it lives in: ``tests/unit`` (one component, no
training loop), ``tests/integration`` (components together on synthetic data with tiny models) and
``tests/system`` (real data from ``../shared/data``, quality assertions). ``pytest -m unit`` runs a
tier; ``scripts/test.sh --tier unit`` does the same after set-up.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers.toy_corpus import make_cfg, write_corpus

from nmt.config import from_dict
from nmt.data.config import DataConfig
from nmt.experiment import ExperimentConfig

pytest_plugins = ("pytester",)  # tests/unit/test_tiers.py runs pytest on a scratch tree

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "system")
SYMBOLS = "a b c d e f g h i j k l".split()


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test under ``tests/`` with its tier folder; a test outside the tier folders is an error."""
    misplaced = set()
    for item in items:
        try:
            parts = item.path.resolve().relative_to(TESTS).parts
        except ValueError:  # a test file given from outside tests/
            continue
        if len(parts) < 2 or parts[0] not in TIERS:
            misplaced.add(str(item.path.relative_to(TESTS.parent)))
            continue
        item.add_marker(getattr(pytest.mark, parts[0]))
    if misplaced:
        raise pytest.UsageError(
            f"tests outside the tier folders tests/{{{','.join(TIERS)}}}/ (move them there): {', '.join(sorted(misplaced))}")


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


@pytest.fixture
def toy(tmp_path: Path) -> DataConfig:
    """Config of a freshly written toy corpus: train 300, valid 40, test 30 pairs."""
    write_corpus(tmp_path / "raw" / "toy", {"train": 300, "valid": 40, "test": 30})
    return make_cfg(tmp_path)
