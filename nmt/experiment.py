"""The experiment config: one YAML file with sections data, model, optim, train, decode.

``load_config(path, overrides)`` reads the YAML, applies ``--section.key value`` overrides and
validates every key (unknown keys and bad values are errors that name the file and key).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmt.config import ConfigError, field, from_dict, load_yaml, set_dotted, to_dict
from nmt.data.config import DataConfig
from nmt.decode.config import DecodeConfig
from nmt.io import atomic_write_text
from nmt.model.config import ModelConfig
from nmt.modules.plugins import load_plugins
from nmt.train.config import OptimConfig, TrainConfig


@dataclass
class ExperimentConfig:
    """Everything one training run needs."""

    data: DataConfig = field(default_factory=DataConfig, help="corpus, subwords, filtering and batching")
    model: ModelConfig = field(default_factory=ModelConfig, help="Transformer dimensions and per-layer mechanisms")
    optim: OptimConfig = field(default_factory=OptimConfig, help="loss, optimiser and schedule")
    train: TrainConfig = field(default_factory=TrainConfig, help="run directory, length, validation, Trainer flags")
    decode: DecodeConfig = field(default_factory=DecodeConfig, help="decoding for test/translate")

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> "ExperimentConfig":
        """Rebuild from the plain dict stored in a checkpoint."""
        return from_dict(cls, data)

    def decode_for_validation(self) -> DecodeConfig:
        """The decode settings used for validation BLEU (beam from ``train.val_decode_beam``)."""
        return dataclasses.replace(self.decode, beam=self.train.val_decode_beam, nbest=1, sampling="none")


def load_config(path: str | Path | None, overrides: list[tuple[str, Any]] | None = None) -> ExperimentConfig:
    """Read and validate an experiment config; ``overrides`` are (dotted key, value) pairs. An error
    names where the bad key came from: the command-line override that sets it, else the file."""
    data = load_yaml(path) if path is not None else {}
    for key, value in overrides or []:
        set_dotted(data, key, value)
    try:
        plugins = (data.get("model") or {}).get("plugins") if isinstance(data, dict) else None
        if plugins:  # the user's own config names them: import (a checkpoint's config only requires them)
            load_plugins([plugins] if isinstance(plugins, str) else list(plugins), "model.plugins")
        return from_dict(ExperimentConfig, data)
    except ConfigError as e:
        key = _override_named(str(e), [k for k, _ in overrides or []])
        if key is not None:
            where = f"--{key} on the command line" + (f" (config {path})" if path is not None else "") + ": "
        else:
            where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{e}") from None


def _override_named(message: str, keys: list[str]) -> str | None:
    """The last of the override ``keys`` that ``message`` names: the key itself (``train.max_steps``,
    ``model.cross[1]``), or a quoted part of it (an unknown section, ``'trian'``)."""
    for key in reversed(keys):
        parts = key.split(".")
        prefixes = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if re.search(rf"(?<![\w.]){re.escape(key)}(?![\w.])", message) or any(f"'{p}'" in message for p in prefixes):
            return key
    return None


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (what a run actually used)."""
    import yaml

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
