"""Encoded splits on disk: flat memory-mapped token arrays plus offsets, written atomically.

A split folder holds ``src.tokens.npy`` / ``tgt.tokens.npy`` (int32 piece ids, no ``</s>``),
``src.offsets.npy`` / ``tgt.offsets.npy`` (int64, N+1 entries: sentence i is
``tokens[offsets[i]:offsets[i+1]]``), ``line.npy`` (int64, the 0-based line of each kept sentence in
the text files) and ``meta.json``. Folders are built under a temporary name and renamed into place
with ``os.replace``, so a crash never leaves a complete-looking folder behind.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from nmt.data.errors import DataError
from nmt.lock import FileLock, holder, is_alive

log = logging.getLogger(__name__)

META = "meta.json"
OWNER = ".owner"  # in a temporary folder while its process builds it (a lock file, nmt.lock)
# a temporary folder without an owner file (from before they had one) is stale this long after its last change
UNOWNED_STALE_S = 600.0


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary folder next to ``final``; on success it becomes ``final`` in one rename.

    On error the temporary folder is removed. If another process created ``final`` meanwhile,
    theirs is kept and ours discarded. While it is built the folder holds a lock file naming its
    process, so that the folder of a killed process is recognised (``remove_stale_temp_dirs``).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        owner = FileLock(tmp / OWNER, f"temporary folder {tmp}").acquire()
        yield tmp
        owner.release()
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / META).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_temp_dirs(folder: Path) -> list[Path]:
    """Delete the temporary folders (``atomic_dir``) in ``folder`` that a killed process left (SIGTERM
    or SIGKILL during ``nmt prepare`` skip the clean-up): those whose owner is gone, by the rule of
    ``nmt.lock``. Returns them; the folders of live processes are kept."""
    if not folder.is_dir():
        return []
    stale = []
    for d in sorted(folder.glob(".tmp-*")):
        if not d.is_dir():
            continue
        info = holder(d / OWNER)
        if info is None:  # no owner file: from an older version, or about to be renamed into place
            parts = d.name.split("-")
            pid = int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else -1
            try:
                old = time.time() - d.stat().st_mtime > UNOWNED_STALE_S
            except OSError:
                continue
            gone = old and (pid < 1 or not is_alive({"pid": pid, "host": socket.gethostname()}))
        else:
            gone = not is_alive(info)
        if gone:
            shutil.rmtree(d, ignore_errors=True)
            stale.append(d)
    if stale:
        log.warning("removed %d temporary folder(s) left by an interrupted prepare: %s", len(stale),
                    ", ".join(str(d) for d in stale))
    return stale


def is_complete(directory: Path) -> bool:
    """Whether ``directory`` is a finished prepared folder (its ``meta.json`` exists)."""
    return (directory / META).is_file()


def write_meta(directory: Path, meta: dict) -> None:
    """Write ``meta.json`` (last, after every array)."""
    (directory / META).write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")


def read_meta(directory: Path) -> dict:
    """The ``meta.json`` of a prepared folder."""
    return json.loads((directory / META).read_text(encoding="utf-8"))


def flatten(seqs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(tokens int32, offsets int64 of length N+1) of a list of id lists."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int32, count=int(offsets[-1]))
    return tokens, offsets


def write_split(directory: Path, src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]],
                line: np.ndarray) -> None:
    """Write the arrays of one encoded split into ``directory`` (a fresh, temporary folder)."""
    for side, seqs in (("src", src), ("tgt", tgt)):
        tokens, offsets = flatten(seqs)
        np.save(directory / f"{side}.tokens.npy", tokens)
        np.save(directory / f"{side}.offsets.npy", offsets)
    np.save(directory / "line.npy", np.asarray(line, dtype=np.int64))


class CorruptCache(DataError):
    """A prepared folder whose arrays do not match their headers or each other (e.g. truncated)."""


ARRAYS = ("src.tokens", "src.offsets", "tgt.tokens", "tgt.offsets", "line")


def check_array_file(path: Path) -> tuple[int, ...]:
    """The shape recorded in a ``.npy`` header, after checking that the file holds all its bytes
    (a truncated array is a CorruptCache naming the file)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read_header:
                raise ValueError(f".npy format version {version}")
            shape, _, dtype = read_header[version](f)
            header = f.tell()
    except (OSError, ValueError, EOFError) as e:
        raise CorruptCache(f"{path}: not a readable array ({e})") from None
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = path.stat().st_size
    if actual != expected:
        raise CorruptCache(f"{path}: {actual} bytes, but its header ({dtype} {shape}) needs {expected}:"
                           " the cached array is truncated or corrupt")
    return tuple(shape)


class EncodedSplit:
    """A prepared split, memory-mapped: piece ids of sentence ``i`` via ``src(i)`` / ``tgt(i)``."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        if not is_complete(self.directory):
            raise DataError(f"{self.directory} is not a prepared split (no {META}); run nmt prepare")
        self.meta = read_meta(self.directory)
        shapes = {name: check_array_file(self.directory / f"{name}.npy") for name in ARRAYS}
        n = shapes["line"][0]
        for side in ("src", "tgt"):
            if shapes[f"{side}.offsets"] != (n + 1,):
                raise CorruptCache(f"{self.directory / f'{side}.offsets.npy'}: shape {shapes[f'{side}.offsets']}"
                                   f" does not fit the {n} sentences of line.npy")
        load = lambda name: np.load(self.directory / f"{name}.npy", mmap_mode="r")
        self.src_tokens, self.src_offsets = load("src.tokens"), np.asarray(load("src.offsets"))
        self.tgt_tokens, self.tgt_offsets = load("tgt.tokens"), np.asarray(load("tgt.offsets"))
        self.line = np.asarray(load("line"))
        for side, tokens, offsets in (("src", self.src_tokens, self.src_offsets), ("tgt", self.tgt_tokens, self.tgt_offsets)):
            if int(offsets[-1]) != len(tokens):
                raise CorruptCache(f"{self.directory / f'{side}.tokens.npy'}: {len(tokens)} tokens, but"
                                   f" {side}.offsets.npy ends at {int(offsets[-1])}")
        self.src_len = np.diff(self.src_offsets)  # (N,) pieces, without </s>
        self.tgt_len = np.diff(self.tgt_offsets)  # (N,)

    def __len__(self) -> int:
        return len(self.line)

    def src(self, i: int) -> np.ndarray:
        """Source piece ids of sentence ``i`` (no ``</s>``)."""
        return self.src_tokens[self.src_offsets[i]:self.src_offsets[i + 1]]

    def tgt(self, i: int) -> np.ndarray:
        """Target piece ids of sentence ``i`` (no ``<s>``/``</s>``)."""
        return self.tgt_tokens[self.tgt_offsets[i]:self.tgt_offsets[i + 1]]
