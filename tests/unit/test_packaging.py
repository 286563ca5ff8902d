"""Packaging: one place for the version number, a base install with only what translation needs,
each command's optional group declared with the modules it checks, the license and the type marker."""

from __future__ import annotations

import re

import pytest
from helpers.paths import REPO

import nmt
from nmt.extras import COMMAND_NEEDS

tomllib = pytest.importorskip("tomllib")

DISTRIBUTIONS = {"lightning": "lightning", "tensorboard": "tensorboard", "matplotlib": "matplotlib",
                 "datasets": "datasets", "ctranslate2": "ctranslate2"}  # module -> the distribution installing it


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _names(requirements: list[str]) -> list[str]:
    return [re.split(r"[<>=!~;\s]", r, maxsplit=1)[0] for r in requirements]


def _group(pyproject: dict, group: str) -> set[str]:
    """The distributions an extra installs, the project's own extras (``factor-nmt[train]``) expanded."""
    out: set[str] = set()
    for name in _names(pyproject["project"]["optional-dependencies"][group]):
        own = re.fullmatch(r"factor-nmt\[(.+)\]", name)
        out |= set().union(*(_group(pyproject, g.strip()) for g in own.group(1).split(","))) if own else {name}
    return out


def test_the_version_has_one_source(pyproject):
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "nmt.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.?(a|b|rc|dev|post)\d+)?", nmt.__version__)
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## Unreleased" in changelog and f"## {nmt.__version__}" in changelog


def test_the_base_install_has_only_what_translation_needs(pyproject):
    base = set(_names(pyproject["project"]["dependencies"]))
    assert base == {"torch", "sentencepiece", "sacrebleu", "pyyaml", "tqdm", "numpy"}
    for command, (group, modules) in COMMAND_NEEDS.items():
        assert {DISTRIBUTIONS[m] for m in modules} <= _group(pyproject, group), command
    assert _group(pyproject, "train") >= {"lightning", "tensorboard", "datasets"}
    assert _group(pyproject, "dev") >= _group(pyproject, "train") | _group(pyproject, "study") | {"pytest", "ruff"}
    setup = (REPO / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert "-e '.[dev,export]'" in setup  # what the tests need: dev (train, study) and export


def test_license_and_type_marker(pyproject):
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "the factor-nmt authors" in text
    assert pyproject["project"]["license"] == "MIT" and pyproject["project"]["license-files"] == ["LICENSE"]
    assert (REPO / "nmt" / "py.typed").is_file()
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["nmt"]
