"""The tier markers come from the folder a test lives in, and a test outside the tier folders is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
MARKERS = ["unit: u", "integration: i", "system: s"]


@pytest.fixture
def tree(pytester: pytest.Pytester) -> pytest.Pytester:
    """A scratch ``tests``-like tree with this suite's conftest and one test per tier."""
    pytester.makeconftest(CONFTEST.read_text(encoding="utf-8"))
    pytester.makeini("[pytest]\nmarkers =\n    " + "\n    ".join(MARKERS) + "\n")
    for tier in ("unit", "integration", "system"):
        pytester.mkpydir(tier)
        (pytester.path / tier / f"test_in_{tier}.py").write_text("def test_it():\n    pass\n", encoding="utf-8")
    return pytester


def test_a_tier_selects_only_its_folder(tree: pytest.Pytester) -> None:
    result = tree.runpytest("-m", "integration", "--collect-only", "-q")
    assert [line for line in result.outlines if "::" in line] == ["integration/test_in_integration.py::test_it"]


def test_no_marker_runs_every_tier(tree: pytest.Pytester) -> None:
    tree.runpytest("-q").assert_outcomes(passed=3)


def test_test_outside_the_tiers_is_an_error(tree: pytest.Pytester) -> None:
    (tree.path / "test_loose.py").write_text("def test_it():\n    pass\n", encoding="utf-8")
    result = tree.runpytest("-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "test_loose.py" in result.stderr.str() and "tier folders" in result.stderr.str()
