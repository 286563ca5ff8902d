"""nmt.runtime: the allocator tuning the CLI applies at start-up."""

from __future__ import annotations

import ctypes
import platform

import pytest

from nmt.runtime import release_free_memory, tune_allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _minor_faults_of_a_growing_cache() -> tuple[int, int]:
    """Minor page faults, and pages touched, of what a decoding loop allocates: per step 12 blocks
    of t x 320 KiB (t = 1..32, a growing K/V cache), written, then freed."""
    import resource

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before, pages = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, 0
    for t in range(1, 33):
        size = t * 320 * 1024
        blocks = [libc.malloc(size) for _ in range(12)]
        for b in blocks:
            ctypes.memset(b, 1, size)
        for b in blocks:
            libc.free(b)
        pages += 12 * size // 4096
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, pages


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_freed_blocks_are_reused_instead_of_faulted_in_again(monkeypatch):
    monkeypatch.setenv("NMT_MALLOC_TUNING", "0")
    assert tune_allocator() is False
    monkeypatch.delenv("NMT_MALLOC_TUNING")
    assert tune_allocator() is True
    _minor_faults_of_a_growing_cache()  # the heap grows once
    faults, pages = _minor_faults_of_a_growing_cache()
    # untuned glibc returns most blocks to the kernel and faults them in again (~95 % of the pages)
    assert faults < pages // 20


def _resident_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_release_free_memory_hands_freed_blocks_back_to_the_kernel():
    assert tune_allocator() is True  # freed memory now stays in the process
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(2**20) for _ in range(96)]  # 96 MiB, like the float weights int8 conversion frees
    for b in blocks:
        ctypes.memset(b, 1, 2**20)
    for b in blocks:
        libc.free(b)
    kept = _resident_mib()
    assert release_free_memory() is True
    assert _resident_mib() < kept - 64
