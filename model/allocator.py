"""glibc allocator settings that keep big per-step buffers mapped; no torch needed."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# glibc mallopt parameter numbers, from malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

_tuned = False


def tune_allocator() -> None:
    """Keep freed memory for reuse, on Linux with glibc; a no-op elsewhere and on a second call.

    Otherwise every training step maps fresh pages for its large buffers and the kernel
    zero-fills them (about half the time went there). Worker threads get their own malloc
    arena whose heaps are capped at 64 MB, so arenas are limited to one for the setting to
    reach them; call this before threads start.
    """
    global _tuned
    if _tuned or not sys.platform.startswith("linux"):
        return
    _tuned = True
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    libc = ctypes.CDLL(libc_name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):
        return  # musl and others have no mallopt; nothing to tune
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(_M_MMAP_MAX, 0)
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    if "MALLOC_ARENA_MAX" not in os.environ:
        mallopt(_M_ARENA_MAX, 1)
