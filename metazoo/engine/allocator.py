"""Keep freed CPU memory in the process, so each meta-iteration does not page it in again.

A meta-iteration allocates and frees the same large activation tensors every time (on the
Omniglot Conv4, 15 MB per feature map of a 75-image query set). With its default settings,
glibc's ``malloc`` returns such blocks to the kernel when they are freed, so the next
iteration pays a page fault, and the kernel's zero-filling, for every page again. metazoo's
loop over tasks frees each task's activations before the next task, which is the worst case:
on the Omniglot-shaped benchmark (MAML, k = 1, meta-batch 32, 2 threads) that is 400,000 to
590,000 page faults and 1.4–1.8 s of kernel time per meta-iteration. PyTorch's CUDA caching
allocator exists for the same reason; on the CPU PyTorch uses plain ``malloc``.

:func:`retain_freed_memory` raises glibc's mmap and trim thresholds, so freed blocks stay in
the heap and are reused. The computation is unchanged; the cost is that the process's
resident memory stays at its peak instead of shrinking between iterations. The setting is
process-wide, so the library never applies it on import or when it builds a run: the entry
point that starts a run applies it (``metazoo.engine.setup.configure_process``, called by
``train`` and ``metazoo eval``) when ``TrainConfig.retain_memory`` is true (the default), and
scripts may call it themselves.
Measured on that benchmark, in two processes taking turns (``benchmarks/allocator.py``): page
faults per iteration fall to ~10, and the iteration is 1.18× and 1.31× faster in two runs
(5.76 → 4.88 s, 5.53 → 4.22 s).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

# mallopt(3) parameters (glibc <malloc.h>).
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

#: Blocks below this size come from the heap, not from mmap (glibc caps it at 32 MiB on
#: 64-bit builds older than 2.35; later ones accept more).
_MMAP_THRESHOLD = 1 << 30
#: Free memory at the top of the heap is returned to the kernel only above this size.
_TRIM_THRESHOLD = (1 << 31) - 1
#: Extra memory requested from the kernel each time the heap grows.
_TOP_PAD = 64 << 20


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
    except (OSError, AttributeError):  # not glibc (musl has no gnu_get_libc_version)
        return None
    return libc


@functools.cache
def retain_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (process-wide, idempotent).

    Returns:
        True if the setting is in effect; False where the C library is not glibc (macOS,
        Windows, musl), where the default allocator is kept and nothing changes.
    """
    libc = _glibc()
    if libc is None:
        return False
    # The threshold may exceed what an older glibc accepts: fall back to its maximum.
    accepted = (libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
                or libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20))
    return bool(accepted and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
                and libc.mallopt(_M_TOP_PAD, _TOP_PAD))


def release_free_memory() -> None:
    """Return the heap's free memory to the kernel now (glibc ``malloc_trim``; elsewhere a
    no-op), so that the resident set counts live memory only.

    :class:`metazoo.engine.memory.PeakMemory` calls it before reading the level a peak is
    measured from: with retained memory, a computation that reuses freed blocks would
    otherwise read as needing almost nothing.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
