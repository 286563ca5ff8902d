"""The test tiers, and shared fixtures: a synthetic reverse-translation corpus, tiny experiment
configs over it, and a toy word corpus for the data pipeline.

Every test is marked with its tier, the folder it lives in: ``tests/unit`` (one component, no
training loop), ``tests/integration`` (components together on synthetic data with tiny models) and
``tests/system`` (real data from ``../shared/data``, quality assertions). ``pytest -m unit`` runs a
tier; ``scripts/test.sh --tier unit`` does the same after set-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from helpers.checkpoints import write_shifted_corpus
from helpers.synthetic import tiny_experiment, write_synthetic_corpus
from helpers.toy_corpus import make_cfg, write_corpus

from nmt.data.config import DataConfig
from nmt.experiment import ExperimentConfig

pytest_plugins = ("pytester",)  # tests/unit/test_tiers.py runs pytest on a scratch tree

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "system")


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


@pytest.fixture(scope="session")
def reverse_root(tmp_path_factory) -> Path:
    """``<root>/{reverse,copy}/{train,valid,test}.{src,tgt}``: 2000 / 100 / 100 pairs each."""
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_corpus(root / "reverse", {"train": 2000, "valid": 100, "test": 100})
    write_synthetic_corpus(root / "copy", {"train": 2000, "valid": 100, "test": 100}, task="copy")
    return root


@pytest.fixture(scope="session")
def shifted_root(tmp_path_factory) -> Path:
    """``<root>/reverse/`` as in ``reverse_root`` with the symbols a..l written m..x: its subword model
    has the same size as the reverse corpus's, and other pieces."""
    root = tmp_path_factory.mktemp("shifted")
    write_shifted_corpus(root / "reverse", {"train": 2000, "valid": 100, "test": 100})
    return root


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


STANDARD = "1000:proj_bias=1"


@pytest.fixture(scope="session")
def trained_tiny(reverse_root, tmp_path_factory) -> Path:
    """A tiny model trained on the copy task until it copies nearly every sentence (validation BLEU
    ~96 at step 450), with its 3 best checkpoints by validation BLEU and last.ckpt under
    ``<run>/checkpoints``; shared by the int8, export and model-selection tests (trained once).
    The task is learnt abruptly, between steps 150 and 400 depending on float rounding (seeds 1-3
    gave 57-92 BLEU at step 300): the 150 steps after that keep the fixture independent of it."""
    from nmt.train.fit import fit

    out = tmp_path_factory.mktemp("trained_tiny") / "run"
    cfg = tiny_experiment(
        reverse_root, out, data={"corpus": "copy", "batch": {"max_tokens": 1200}},
        model={"d_model": 64, "n_heads": 4, "d_ff": 128, "encoder_layers": 2, "decoder_layers": 2,
               # the standard (biased) layer learns this task in fewer updates than the bias-free "1000"
               "encoder_self": STANDARD, "decoder_self": STANDARD, "cross": STANDARD},
        optim={"lr": 5e-3, "warmup_steps": 50},
        train={"max_steps": 450, "val_every_steps": 75, "save_top_k": 3, "heatmap_sentences": 0, "log_every_steps": 100,
               "num_threads": 2},  # the same model whatever thread count earlier tests left
    )
    fit(cfg, enable_progress_bar=False)
    return out
