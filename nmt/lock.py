"""A lock file naming its holder (pid and host): one process at a time works in a folder.

The lock is a small JSON file created with ``O_CREAT | O_EXCL``, so of two processes that try at
once exactly one gets it. A lock left by a process that has died is stale: the next ``acquire``
takes it over and says so. So is a lock written on another host: the folders locked here (run and
output folders) are local to one machine, and one that comes from another machine (a restored
copy) holds no live process of this one. A lock held by a live process raises ``LockHeld`` naming
the file and the holder.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("nmt")


class LockHeld(RuntimeError):
    """Another live process holds the lock; the message names the file and the holder."""


def holder(path: str | os.PathLike) -> dict[str, Any] | None:
    """The holder recorded in lock file ``path`` (pid, host, since), None when there is no lock or it
    cannot be read."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def is_alive(info: dict[str, Any] | None) -> bool:
    """Whether the recorded holder still runs: written on this host and its pid exists."""
    if info is None or info.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(info["pid"]), 0)
    except (KeyError, TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class FileLock:
    """``with FileLock(folder / "RUNNING"):`` holds the lock for the block; ``acquire`` / ``release``
    for longer spans. Re-entrant within one process is not supported: a second acquire raises."""

    def __init__(self, path: str | os.PathLike, what: str = "this folder") -> None:
        self.path = Path(path)
        self.what = what
        self.held = False

    def acquire(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                info = holder(self.path)
                if info is not None and is_alive(info):
                    raise LockHeld(f"{self.path}: {self.what} is in use by process {info.get('pid')} on "
                                   f"{info.get('host')} (since {time.ctime(float(info.get('since', 0)))}); "
                                   "wait for it to end, or stop it") from None
                if info is None and _young(self.path):
                    time.sleep(0.2)  # being written by its creator right now
                    continue
                log.warning("%s: taking over a stale lock of process %s on %s, which is gone", self.path,
                            (info or {}).get("pid", "?"), (info or {}).get("host", "?"))
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}, f)
            self.held = True
            return self
        raise LockHeld(f"{self.path}: could not take the lock of {self.what} (it keeps changing hands)")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _young(path: Path, seconds: float = 2.0) -> bool:
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False
