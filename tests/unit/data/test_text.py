"""Reading parallel text: missing files, unequal line counts and invalid UTF-8 give precise errors."""

from __future__ import annotations

import pytest
from helpers.paths import REPO

from nmt.data.errors import DataError
from nmt.data.prepare import prepare
from nmt.data.text import ParallelFiles, read_lines, read_parallel


def test_read_lines_keeps_exotic_breaks_inside_a_line(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes("\ufeffone\u2028still one\x85too\nzwei\n\ndrei".encode("utf-8"))
    assert read_lines(p) == ["one\u2028still one\x85too", "zwei", "", "drei"]


def test_invalid_utf8_names_file_line_and_offset(tmp_path):
    p = tmp_path / "bad.de"
    p.write_bytes(b"gut\nauch gut\nschlecht \xff hier\n")
    with pytest.raises(DataError) as e:
        read_lines(p)
    msg = str(e.value)
    assert str(p) in msg and "line 3" in msg and "byte offset 22" in msg and "0xff" in msg


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="missing file: .*nope.en"):
        read_lines(tmp_path / "nope.en")


def test_unequal_line_counts_name_both_files(tmp_path):
    (tmp_path / "t.en").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "t.de").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_parallel(ParallelFiles("train", tmp_path / "t.en", tmp_path / "t.de"))
    msg = str(e.value)
    assert "t.en has 3 lines" in msg and "t.de has 2" in msg


def test_limit_keeps_first_pairs(tmp_path):
    (tmp_path / "t.en").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "t.de").write_text("x\ny\nz\n", encoding="utf-8")
    assert read_parallel(ParallelFiles("train", tmp_path / "t.en", tmp_path / "t.de"), limit=2) == (["a", "b"], ["x", "y"])


def test_prepare_reports_missing_split_with_hint(toy):
    toy.splits["valid"] = "dev"
    with pytest.raises(DataError) as e:
        prepare(toy, progress=False)
    msg = str(e.value)
    assert "split 'valid'" in msg and "dev.en" in msg and "--data.root" in msg and "NMT_DATA_ROOT" in msg
    assert "\n" not in msg


def test_prepare_reports_invalid_utf8_in_valid_split(toy):
    p = toy.root + "/toy/valid.de"
    with open(p, "ab") as f:
        f.write(b"caf\xc3 au lait\n")
    with pytest.raises(DataError, match=r"valid\.de: line 41: .* byte offset"):
        prepare(toy, progress=False)


def test_unknown_split_name_is_rejected(toy):
    toy.splits["dev"] = "valid"
    with pytest.raises(DataError, match="unknown split 'dev'"):
        prepare(toy, progress=False)


def test_recipes_are_valid_data_sections():

    from nmt.config import from_dict, load_yaml
    from nmt.data.config import DataConfig

    recipes = sorted((REPO / "data" / "recipes").glob("*.yaml"))
    assert recipes
    for path in recipes:
        cfg = from_dict(DataConfig, load_yaml(path)["data"], "data")
        assert cfg.corpus == path.stem
