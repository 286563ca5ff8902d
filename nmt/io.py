"""Files the toolkit's way: atomic writes and one rule for reading text lines.

Writes go to a temporary file in the target's folder, are flushed to disk, then renamed over the
target with ``os.replace``: a reader sees the old file or the new one, never a partial one, and a
failed write leaves the old file and no temporary behind.

Reading text (corpora, references, hypotheses, ``nmt translate`` input from a file or stdin):
UTF-8, decoded strictly; lines end at ``\\n`` only, and a ``\\r`` right before that ``\\n`` is part
of the ending (CRLF files read like LF files). Every other character, including a lone ``\\r``,
U+2028 and U+0085, belongs to its line, so that both sides of a parallel corpus, a hypothesis file
and its references always number their lines alike. A UTF-8 byte order mark at the start is
dropped; a last line without ``\\n`` is a line. Invalid UTF-8 is a
``TextError`` naming the file, the 1-based line, the byte and its offset.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

BOM = "\ufeff"


class TextError(ValueError):
    """A text file or stream that cannot be read as UTF-8 lines; the message names file and line."""


class WriteError(OSError):
    """Writing a file failed (a full disk, an exceeded quota, an I/O error); the message names the
    file and says that its previous content, if any, is unchanged."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class _RawFile(io.FileIO):
    """The temporary file of ``atomic_write``: remembers the error of a failed write, which torch's
    checkpoint writer replaces by a message of its own ("unexpected pos ...", "file write failed")."""

    write_error: OSError | None = None

    def write(self, data: Any) -> int | None:
        try:
            return super().write(data)
        except OSError as e:
            self.write_error = e
            raise


_WRITER_FAILED = ("unexpected pos", "file write failed", "PytorchStreamWriter failed")
_MESSAGES = {errno.ENOSPC: "the disk is full (no space left on device)", errno.EDQUOT: "the disk quota is exceeded"}


def _write_error(path: Path, error: BaseException, raw: _RawFile) -> WriteError | None:
    """The one-line error for a write of ``path`` that failed with ``error`` (None: not a write failure)."""
    code: int | None = None
    if isinstance(error, OSError) and error.errno is not None:
        code = error.errno
    elif isinstance(error, RuntimeError) and raw.write_error is not None and any(
            s in str(error) for s in _WRITER_FAILED):
        code = raw.write_error.errno
    if code is None or (code not in _MESSAGES and raw.write_error is None):
        return None  # not a failed write (e.g. a missing folder): the original error says it best
    kept = f"the previous {path.name} is unchanged" if path.exists() else "nothing was written"
    return WriteError(code, f"cannot write {path}: {_MESSAGES.get(code) or os.strerror(code)}; {kept}")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Yield a file object (``mode`` "wb" or "w": UTF-8, ``\\n`` newlines) whose content replaces
    ``path`` in one rename when the block ends without error. Parent folders are created. A write that
    fails for lack of space (or another I/O error) is a ``WriteError`` naming ``path``."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', got {mode!r}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    raw = _RawFile(fd, "w")
    try:
        buffered = io.BufferedWriter(raw)
        f: IO[Any] = buffered if mode == "wb" else io.TextIOWrapper(buffered, encoding="utf-8", newline="\n")
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    except BaseException as e:
        with contextlib.suppress(OSError):
            raw.close()  # a full disk can make the close fail too
        Path(tmp).unlink(missing_ok=True)
        failed = _write_error(p, e, raw)
        if failed is not None:
            raise failed from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)


def _decode_error(name: str, data: bytes, e: UnicodeDecodeError, line0: int = 0, offset0: int = 0) -> TextError:
    """The error for invalid UTF-8 at ``e.start`` of ``data``, which starts at line ``line0`` (0-based)
    and byte ``offset0`` of the file."""
    line = line0 + data.count(b"\n", 0, e.start) + 1
    line_start = data.rfind(b"\n", 0, e.start) + 1
    return TextError(
        f"{name}: line {line}: byte {data[e.start]:#04x} at byte offset {offset0 + e.start}"
        f" (column {e.start - line_start + 1}) is not valid UTF-8 ({e.reason})")


def split_lines(data: bytes, name: str) -> list[str]:
    """The lines of a whole file's bytes, by the rule of this module."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _decode_error(name, data, e) from None
    lines = text.removeprefix(BOM).split("\n")
    last = lines.pop()  # not followed by "\n": no CRLF ending to strip
    if "\r" in text:
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if last:
        lines.append(last)
    return lines


def read_lines(path: str | os.PathLike) -> list[str]:
    """All lines of a UTF-8 text file, by the rule of this module; a missing file is FileNotFoundError."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"missing file: {p}")
    return split_lines(p.read_bytes(), str(p))


def iter_lines(stream: IO[bytes] | Iterable[bytes], name: str) -> Iterator[str]:
    """The lines of a binary stream (e.g. ``sys.stdin.buffer``) one at a time, each as soon as its
    ``\\n`` has arrived, by the same rule as ``read_lines``; ``name`` is used in errors."""
    offset = 0
    for n, raw in enumerate(stream):
        body = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _decode_error(name, body, e, n, offset) from None
        yield text.removeprefix(BOM) if n == 0 else text
        offset += len(raw)


def lines_text(lines: Iterable[str]) -> str:
    """``lines`` as file content: each followed by ``\\n``."""
    return "".join(line + "\n" for line in lines)


def same_file(a: str | os.PathLike | int, b: str | os.PathLike | int) -> bool:
    """Whether ``a`` and ``b`` (paths or open file descriptors) are one file: the same device and
    inode, so also through symbolic and hard links. A path that does not exist is no file."""
    try:
        sa, sb = (os.fstat(x) if isinstance(x, int) else os.stat(x) for x in (a, b))
    except (OSError, ValueError):
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)
