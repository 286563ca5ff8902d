"""Reading and validating plain-text parallel files (UTF-8, one sentence per line, LF endings)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nmt import io as nmt_io
from nmt.data.errors import DataError


@dataclass(frozen=True)
class ParallelFiles:
    """The two sides of one split: ``src``/``tgt`` text files, and where they came from (for messages)."""

    split: str
    src: Path
    tgt: Path
    origin: str = ""

    def check(self) -> None:
        """Raise DataError (one line, with ``origin`` as hint) if a side is missing."""
        for side, p in (("source", self.src), ("target", self.tgt)):
            if not p.is_file():
                where = f" ({self.origin})" if self.origin else ""
                raise DataError(f"missing {side} file of split '{self.split}': {p}{where}")


def read_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 text file without their trailing newline, by ``nmt.io``'s one rule (only
    ``\\n`` ends a line). Raises DataError naming the file, the 1-based line number and the byte
    offset of the first byte that is not valid UTF-8, or a missing file.
    """
    try:
        return nmt_io.read_lines(path)
    except (nmt_io.TextError, FileNotFoundError) as e:
        raise DataError(str(e)) from None


def read_parallel(files: ParallelFiles, limit: int = 0) -> tuple[list[str], list[str]]:
    """Source and target lines of a split; the two files must have the same number of lines.

    ``limit`` > 0 keeps only the first ``limit`` pairs (after checking the full files).
    """
    files.check()
    src, tgt = read_lines(files.src), read_lines(files.tgt)
    if len(src) != len(tgt):
        raise DataError(
            f"split '{files.split}': {files.src} has {len(src)} lines but {files.tgt} has {len(tgt)};"
            " the two sides of a parallel corpus must have the same number of lines")
    if limit > 0:
        src, tgt = src[:limit], tgt[:limit]
    return src, tgt


def fingerprint(path: str | Path) -> dict:
    """Identity of a file for cache keys: resolved path, size and modification time (ns)."""
    p = Path(path).resolve()
    st = os.stat(p)
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def write_lines_atomic(path: Path, lines: list[str]) -> None:
    """Write ``lines`` (one per line, LF; a ``\\n`` or ``\\r`` inside a line becomes a space) atomically."""
    nmt_io.atomic_write_text(path, nmt_io.lines_text(line.replace("\n", " ").replace("\r", " ") for line in lines))
