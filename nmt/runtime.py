"""Process-wide settings for CPU speed, applied by the CLI and the benchmark scripts at start-up.

glibc's allocator returns large freed blocks to the kernel (``munmap``, heap trimming), so a
decoding loop that allocates multi-MB tensors every step page-faults them in again each time (on
the base model's beam-5 workload: ~700k minor faults, 1.5 s of system time per 192 sentences).
Keeping freed memory in the process instead is what jemalloc or tcmalloc, the allocators usually
preloaded for PyTorch CPU inference, do; ``tune_allocator`` gets the same from glibc with
``mallopt``: every block comes from the heap (no per-block ``mmap``), which grows in 64 MB steps
and is trimmed only when 2 GB lie free at its top. The process keeps its peak memory until it
ends; the peak itself does not grow (base model training: ~5.1 GB either way). Set
``NMT_MALLOC_TUNING=0`` to leave the allocator alone.

Preparing a model for inference (merging, packing or int8 conversion of its linear layers) frees
the float weights it replaces; ``release_free_memory`` hands such freed memory back to the kernel
once (``malloc_trim``), so that it does not stay in the process for the whole run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform
from collections.abc import Mapping

# mallopt parameters (glibc malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
TOP_PAD = 64 * 1024 * 1024
TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt's int takes


@functools.cache
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The feature flags the (Linux) kernel reports for this CPU; empty where it reports none."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def onednn_max_isa(env: Mapping[str, str] | None = None) -> str:
    """The instruction-set cap the user put on oneDNN (``ONEDNN_MAX_CPU_ISA``, else its older name
    ``DNNL_MAX_CPU_ISA``, as oneDNN reads them), upper case; "" where none is set."""
    env = os.environ if env is None else env
    return (env.get("ONEDNN_MAX_CPU_ISA") or env.get("DNNL_MAX_CPU_ISA") or "").strip().upper()


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc on Linux, else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def tune_allocator() -> bool:
    """Make glibc keep freed memory for reuse. Returns whether it was applied: False off
    Linux/glibc or with ``NMT_MALLOC_TUNING=0``."""
    if os.environ.get("NMT_MALLOC_TUNING", "1") == "0":
        return False
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((M_MMAP_MAX, 0), (M_TOP_PAD, TOP_PAD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return all(mallopt(param, value) == 1 for param, value in settings)


def release_free_memory() -> bool:
    """Return the allocator's free memory to the kernel now (glibc ``malloc_trim``); False where
    that is not available. Meant for one-off moments such as the end of model loading."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    trim = libc.malloc_trim
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True
