"""release_freed_memory hands freed heap pages back to the OS (the service calls it after large
batches, so RSS does not keep the peak of the largest document ever tagged)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from service.runtime import _LIBC

# Runs in a fresh interpreter so the heap holds nothing but what the script allocates. 100k
# blocks of 1 KiB sit below glibc's mmap threshold, so they live in the heap; the last block is
# kept so free() cannot shrink the heap from its top on its own.
SCRIPT = textwrap.dedent(
    """
    import ctypes
    from service.runtime import _LIBC, release_freed_memory

    def rss_mb():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

    _LIBC.malloc.restype = ctypes.c_void_p
    _LIBC.free.argtypes = [ctypes.c_void_p]
    base = rss_mb()
    blocks = [_LIBC.malloc(1024) for _ in range(100_000)]
    for b in blocks:
        ctypes.memset(b, 1, 1024)
    for b in blocks[:-1]:
        _LIBC.free(b)
    after_free = rss_mb()
    release_freed_memory()
    print(base, after_free, rss_mb())
    """
)


@pytest.mark.skipif(_LIBC is None or not sys.platform.startswith("linux"), reason="glibc only")
def test_release_freed_memory_returns_heap_pages_to_the_os() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    base, after_free, after_release = map(float, out.stdout.split())
    assert after_free - base > 80, "the freed blocks should still count in RSS before the trim"
    assert after_free - after_release > 80, (base, after_free, after_release)
