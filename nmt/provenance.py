"""Which code a process runs (the git commit of the package's checkout) and on what hardware, each
read once per process.

A study record names the code version and the hardware of every process that trained its run, so
that all runs of one stage can be shown to come from one model-code version, and paired runs to
have trained on one kind of hardware (another CPU generation or GPU rounds differently). The version
is read at the first call and kept: a commit made while a long process runs does not change the code
that process loaded.
"""

from __future__ import annotations

import functools
import platform
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


@functools.cache
def hardware() -> str:
    """The processor this process computes on: the CPU's model name with the vector instructions
    PyTorch's CPU kernels use (e.g. ``AMD EPYC 9R14 96-Core Processor, AVX512``), and the GPU's
    name when CUDA is available."""
    import torch

    cpu = platform.processor() or platform.machine() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            cpu = next((line.partition(":")[2].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    out = f"{cpu}, {torch.backends.cpu.get_cpu_capability()}"
    if torch.cuda.is_available():
        out += f"; GPU {torch.cuda.get_device_name()}"
    return out
