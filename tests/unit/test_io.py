"""nmt.io: atomic writes and the one line-reading rule (files and streams split alike)."""

from __future__ import annotations

import errno
import io
import os
import random
import stat

import pytest
import torch

import nmt.io
from nmt.checkpoint import Checkpoint
from nmt.cli import main
from nmt.io import (
    TextError,
    WriteError,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    iter_lines,
    read_lines,
    same_file,
)

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


class NoRoom(io.FileIO):
    """A file on a disk with ``ROOM`` bytes free: a longer write fails as the kernel's would."""

    ROOM = 4096

    def write(self, data):
        if self.tell() + len(memoryview(data)) > self.ROOM:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


@pytest.fixture
def full_disk(monkeypatch):
    """Every ``atomic_write`` goes to a disk with ``NoRoom.ROOM`` bytes free."""
    monkeypatch.setattr(nmt.io, "_RawFile", type("Full", (nmt.io._RawFile, NoRoom), {}))


@pytest.mark.parametrize("payload", ["large tensor", "small tensor", "text"])
def test_a_full_disk_is_one_line_naming_the_file_and_keeps_the_old_one(tmp_path, full_disk, payload):
    """torch's writer turns the failed write of a large tensor into "[enforce fail ...] unexpected pos";
    a small one fails when the file is flushed; text fails in the write itself."""
    p = tmp_path / "x.ckpt"
    p.write_bytes(b"the previous checkpoint")
    with pytest.raises(WriteError) as failed:
        if payload == "text":
            atomic_write_text(p, "x" * 10_000)
        else:
            with atomic_write(p) as f:
                torch.save({"w": torch.ones(100_000 if payload == "large tensor" else 2_000)}, f)
    assert str(failed.value) == f"cannot write {p}: the disk is full (no space left on device); the previous x.ckpt is unchanged"
    assert failed.value.errno == errno.ENOSPC and isinstance(failed.value, OSError)
    assert p.read_bytes() == b"the previous checkpoint" and [q.name for q in tmp_path.iterdir()] == ["x.ckpt"]
    with pytest.raises(WriteError, match=f"cannot write {tmp_path / 'new.txt'}: the disk is full .*; nothing was written"):
        atomic_write_text(tmp_path / "new.txt", "y" * 10_000)


def test_other_errors_in_an_atomic_write_stay_what_they_are(tmp_path, full_disk):
    with pytest.raises(RuntimeError, match="^boom$"), atomic_write(tmp_path / "f") as f:
        f.write(b"small")
        raise RuntimeError("boom")
    atomic_write_bytes(tmp_path / "f", b"fits")  # within the room left
    assert (tmp_path / "f").read_bytes() == b"fits"


def test_nmt_average_onto_a_full_disk_is_one_line_with_exit_2(tmp_path, full_disk, capsys):
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.ckpt")
        with pytest.MonkeyPatch.context() as m:  # written before the disk filled up
            m.setattr(nmt.io, "_RawFile", io.FileIO)
            Checkpoint({"w": torch.full((5000,), float(i))}, {}, {}, {"src": b"spm"}, global_step=i).save(paths[-1])
    out = tmp_path / "avg.ckpt"
    out.write_bytes(b"an older average")
    assert main(["average", "--checkpoints", *map(str, paths), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: cannot write {out}: the disk is full (no space left on device); the previous avg.ckpt is unchanged\n"
    assert out.read_bytes() == b"an older average"


def test_same_file_sees_through_links(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("a", encoding="utf-8")
    b.write_text("a", encoding="utf-8")
    (tmp_path / "sym").symlink_to(a)
    os.link(a, tmp_path / "hard")
    assert same_file(a, tmp_path / "sym") and same_file(a, tmp_path / "hard") and same_file(a, tmp_path / "." / "a.txt")
    assert not same_file(a, b) and not same_file(a, tmp_path / "missing")
    with a.open("rb") as f:
        assert same_file(f.fileno(), tmp_path / "hard") and not same_file(f.fileno(), b)
