"""The optional dependency groups (pip "extras") and the one check that names the group a command lacks.

The base install translates and scores (``nmt translate``, ``nmt score``, ``nmt average``,
``nmt.Translator``): torch, sentencepiece, sacrebleu, pyyaml, numpy, tqdm. The groups add the rest
(``pyproject.toml``, ``[project.optional-dependencies]``):

- ``train``: ``nmt prepare`` of Hugging Face corpora (datasets), ``nmt fit`` / ``validate`` / ``test`` /
  ``select`` (lightning, tensorboard; matplotlib for the attention heatmaps logged at validation)
- ``study``: ``nmt ablate`` and ``nmt analyze`` (the training extras, matplotlib for plots and reports)
- ``export``: ``nmt export`` (ctranslate2)
- ``dev``: the test suite and lint (pytest, ruff, and the train and study groups)

A command whose group is missing stops before doing anything, with one line naming the group
(``require``, raised as ``MissingExtra``; the CLI prints it and exits 2).
"""

from __future__ import annotations

import importlib.util
import sys

DISTRIBUTION = "factor-nmt"

GROUP_NAMES = {"train": "training", "study": "study", "export": "export"}

# command -> (its group, the top-level modules it imports at entry)
COMMAND_NEEDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "fit": ("train", ("lightning", "tensorboard", "matplotlib")),
    "validate": ("train", ("lightning", "tensorboard", "matplotlib")),
    "test": ("train", ("lightning",)),  # the corpus's data module is a LightningDataModule
    "select": ("train", ("lightning",)),
    "ablate": ("study", ("lightning", "tensorboard", "matplotlib")),
    "analyze": ("study", ("lightning", "tensorboard", "matplotlib")),
    "export": ("export", ("ctranslate2",)),
}


class MissingExtra(ImportError):
    """A command or feature needs an optional dependency group that is not installed."""


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found without importing it; a module set to ``None`` in
    ``sys.modules`` counts as missing)."""
    if module in sys.modules:  # imported already (or a stand-in set by a test)
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


def require(group: str, *modules: str, what: str) -> None:
    """Raise ``MissingExtra`` naming ``group`` and how to install it when any of ``modules`` is
    missing: ``nmt fit needs the training extras: pip install 'factor-nmt[train]' (lightning is not installed)``."""
    missing = [m for m in modules if not installed(m)]
    if missing:
        kind = GROUP_NAMES.get(group, group)
        verb = "is" if len(missing) == 1 else "are"
        raise MissingExtra(f"{what} needs the {kind} extras: pip install '{DISTRIBUTION}[{group}]' "
                           f"({', '.join(missing)} {verb} not installed)")


def require_command(command: str) -> None:
    """``require`` the group of ``nmt <command>`` (``COMMAND_NEEDS``); nothing for base commands."""
    if command in COMMAND_NEEDS:
        group, modules = COMMAND_NEEDS[command]
        require(group, *modules, what=f"nmt {command}")
