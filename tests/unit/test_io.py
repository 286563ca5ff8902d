"""nmt.io: atomic writes and the one line-reading rule (files and streams split alike)."""

from __future__ import annotations

import io
import random
import stat

import pytest

from nmt.io import TextError, atomic_write, atomic_write_bytes, atomic_write_text, iter_lines, read_lines

PIECES = ["a", "b ", "\n", "\r", "\r\n", "\u2028", "\x85", "\ufeff", "ä", ""]


def test_rule_on_the_tricky_cases(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes("\ufeffone\u2028still one\x85too\r\nzwei\n\ndrei\rvier\n\nlast\r".encode())
    expected = ["one\u2028still one\x85too", "zwei", "", "drei\rvier", "", "last\r"]
    assert read_lines(p) == expected
    assert list(iter_lines(io.BytesIO(p.read_bytes()), "x")) == expected
    assert read_lines(_write(tmp_path, b"")) == [] and read_lines(_write(tmp_path, b"\n")) == [""]


def _write(tmp_path, data: bytes):
    p = tmp_path / "w.txt"
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("seed", range(20))
def test_a_file_and_a_stream_of_it_give_the_same_lines(tmp_path, seed):
    rng = random.Random(seed)
    data = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40))).encode()
    lines = read_lines(_write(tmp_path, data))
    assert list(iter_lines(io.BytesIO(data), "s")) == lines
    # the rule: joining with "\n" gives back the text up to the line endings it dropped
    text = data.decode().removeprefix("\ufeff").replace("\r\n", "\n")
    assert "\n".join(lines) == text.removesuffix("\n")


def test_invalid_utf8_has_the_same_message_from_a_file_and_a_stream(tmp_path):
    data = b"gut\nauch gut\r\nschlecht \xff hier\n"
    p = _write(tmp_path, data)
    with pytest.raises(TextError) as from_file:
        read_lines(p)
    with pytest.raises(TextError) as from_stream:
        list(iter_lines(io.BytesIO(data), str(p)))
    assert str(from_file.value) == str(from_stream.value)
    assert str(from_file.value) == f"{p}: line 3: byte 0xff at byte offset 23 (column 10) is not valid UTF-8 (invalid start byte)"


def test_stream_lines_come_before_the_stream_ends():
    def source():
        yield b"first\n"
        raise AssertionError("read past the first line")

    assert next(iter_lines(source(), "s")) == "first"


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing file: .*nope"):
        read_lines(tmp_path / "nope")


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    p = tmp_path / "sub" / "f.txt"
    atomic_write_text(p, "old\n")
    assert p.read_text(encoding="utf-8") == "old\n"
    with pytest.raises(RuntimeError, match="boom"), atomic_write(p, "w") as f:
        f.write("half")
        raise RuntimeError("boom")
    assert p.read_text(encoding="utf-8") == "old\n"
    assert [q.name for q in p.parent.iterdir()] == ["f.txt"]  # no temporary left
    atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"new"
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"x")
    assert stat.S_IMODE(p.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)  # permissions of any new file
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(p, "a"):
            pass
