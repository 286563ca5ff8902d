"""Which code a process runs: the git commit of the package's checkout, read once per process.

A study record names the code version of every process that trained its run, so that all runs of
one stage can be shown to come from one model-code version. The version is read at the first call
and kept: a commit made while a long process runs does not change the code that process loaded.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


@functools.cache
def code_version() -> str:
    """``<commit>`` of the checkout holding this package, ``<commit>+dirty`` when files under the
    package differ from it, ``unknown`` outside a git checkout (an installed wheel)."""
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(PACKAGE), *args], capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise OSError(out.stderr.strip())
        return out.stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--", str(PACKAGE))
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha
