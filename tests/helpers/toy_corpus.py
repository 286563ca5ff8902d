"""Tiny synthetic word corpora and data configs over them, for the data-pipeline tests."""

from __future__ import annotations

import random
from pathlib import Path

from nmt.data.config import DataConfig, SubwordConfig

WORDS = ("the a man woman dog cat runs sits on in under green red big small house street ball"
         " water tree child plays with near old young blue").split()


def sentences(n: int, seed: int, lo: int = 2, hi: int = 14) -> list[str]:
    """``n`` pseudo-sentences of ``lo..hi`` words."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))).capitalize() + "." for _ in range(n)]


def to_target(line: str) -> str:
    """A deterministic 'translation': words reversed and each word doubled in places."""
    return " ".join(w[::-1] for w in reversed(line.split()))


def write_corpus(directory: Path, sizes: dict[str, int], src: str = "en", tgt: str = "de") -> dict[str, list[str]]:
    """Write ``<prefix>.<src>`` / ``<prefix>.<tgt>`` files; returns the source lines per prefix."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, (prefix, n) in enumerate(sizes.items()):
        lines = sentences(n, seed=i)
        (directory / f"{prefix}.{src}").write_text("".join(s + "\n" for s in lines), encoding="utf-8")
        (directory / f"{prefix}.{tgt}").write_text("".join(to_target(s) + "\n" for s in lines), encoding="utf-8")
        out[prefix] = lines
    return out


def make_cfg(tmp_path: Path, **overrides) -> DataConfig:
    """A config over ``tmp_path/raw/toy`` with a tiny SentencePiece model."""
    kw = {"root": str(tmp_path / "raw"), "corpus": "toy", "prepared_dir": str(tmp_path / "prepared"),
          "splits": {"train": "train", "valid": "valid", "test": "test"},
          "subword": SubwordConfig(vocab_size=120)}
    kw.update(overrides)
    return DataConfig(**kw)

