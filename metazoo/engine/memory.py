"""Memory: the peak of a computation, the level now, and how much this machine has.

On the CPU (Linux), peak memory is the kernel's high-water mark of the process's resident set,
reset through ``/proc/self/clear_refs`` before each measurement and read from
``/proc/self/status``; the level a peak is measured from is read after the C library has
returned its free memory to the kernel (:func:`metazoo.engine.allocator.release_free_memory`),
so the figure holds whether or not freed memory is retained for reuse. Where those files are
missing (not Linux), memory cannot be measured: NaN. On a CUDA device, memory is the caching
allocator's allocated bytes, and the peak its peak of them.

:mod:`metazoo.analysis.cost` measures with these, and so does the choice of a run's execution
strategy (:mod:`metazoo.engine.strategy`).
"""

from __future__ import annotations

import math
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from metazoo.engine.allocator import release_free_memory

if TYPE_CHECKING:
    from typing_extensions import Self

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")
STATM = Path("/proc/self/statm")
PAGE_KIB = (os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096) / 1024
#: The memory a control group (a container) lets its processes use: v2, then v1.
CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"),
                 Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))

#: The share of the memory there is that ``max_memory`` defaults to: on the CPU, half (the rest
#: is the system's and other programs'); on a CUDA device, 90% (the rest is the CUDA context's
#: and the caching allocator's slack).
DEFAULT_SHARE = {"cpu": 0.5, "cuda": 0.9}


def _kib(field: str) -> float:
    try:
        return float(re.search(rf"{field}:\s+(\d+)", STATUS.read_text()).group(1))
    except (OSError, AttributeError):
        return float("nan")


def _resident_kib() -> float:
    """The resident set now, from ``/proc/self/statm`` (cheaper to read than the status)."""
    try:
        return int(STATM.read_text().split()[1]) * PAGE_KIB
    except (OSError, IndexError, ValueError):
        return float("nan")


def _reset_peak() -> bool:
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of a computation above the level when :meth:`start` was called: the
    resident-set high-water mark on the CPU, the caching allocator's peak of allocated bytes on
    a CUDA device; NaN where it cannot be read.

    On the CPU, ``reset=True`` resets the process's high-water mark, which makes every
    measurement exact, but what ``/usr/bin/time`` and ``getrusage`` then report for the
    process is its peak since the last reset. ``reset=False`` leaves the mark alone (for a
    run's own process, whose peak its user may be measuring): a computation that raises the
    mark is measured exactly, one that stays below it by sampling the resident set every
    millisecond. Use it as a context manager (``with PeakMemory(...) as memory:``), or call
    :meth:`start` and then :meth:`high_bytes`.
    """

    def __init__(self, device: str | torch.device = "cpu", reset: bool = True) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.reset = reset
        self.before = float("nan")  # KiB
        self.can_reset = False
        self._mark = float("nan")  # the high-water mark at the start (KiB), with reset=False
        self._sampled = 0.0
        self._stop: threading.Event | None = None
        self._sampler: threading.Thread | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop_sampling()

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.before, self.can_reset = torch.cuda.memory_allocated(self.device) / 1024, True
            return
        release_free_memory()
        self.before = _kib("VmRSS")
        if self.reset:
            self.can_reset = _reset_peak()
            return
        self._mark = _kib("VmHWM")
        self.can_reset = not math.isnan(self._mark)
        self._sampled, self._stop = self.before, threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self._sampled = max(self._sampled, _resident_kib())

    def _stop_sampling(self) -> None:
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
            self._sampler = None

    def high_bytes(self) -> float:
        """The highest level since :meth:`start`, in bytes (NaN where it cannot be read)."""
        if not self.can_reset:
            return float("nan")
        if self.cuda:
            torch.cuda.synchronize(self.device)
            return float(torch.cuda.max_memory_allocated(self.device))
        if self.reset:
            high = _kib("VmHWM")
        else:
            self._stop_sampling()
            mark = _kib("VmHWM")
            high = mark if mark > self._mark else max(self._sampled, _kib("VmRSS"))
        # The high-water mark can sit a page or two below the level read before (noise of the
        # resident-set accounting): never below that level.
        return 1024 * max(high, self.before)

    def peak_mib(self) -> float:
        """The peak above the level at :meth:`start`, in MiB (NaN where it cannot be read)."""
        return (self.high_bytes() / 1024 - self.before) / 1024


def can_measure(device: str | torch.device = "cpu") -> bool:
    """Whether :class:`PeakMemory` reads peaks on ``device`` here: on a CUDA device, and on
    the CPU where Linux reports the resident set (``/proc/self/status``)."""
    device = torch.device(device)
    return device.type == "cuda" or (device.type == "cpu"
                                     and not math.isnan(_kib("VmHWM")))


def live_bytes(device: str | torch.device = "cpu") -> float:
    """The memory in use now: the resident set once free memory is returned to the kernel on
    the CPU, the allocated bytes on a CUDA device (NaN where it cannot be read)."""
    device = torch.device(device)
    if device.type == "cuda":
        return float(torch.cuda.memory_allocated(device))
    release_free_memory()
    return 1024 * _kib("VmRSS")


def physical_memory() -> int:
    """This machine's memory in bytes (0 where the system does not say: no bound)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return 0


def usable_memory(device: str | torch.device = "cpu") -> int:
    """The memory a run on ``device`` may use, in bytes: a CUDA device's own; on the CPU the
    machine's, or its control group's limit where lower (a container); 0 if unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type != "cpu":
        return 0
    found = [physical_memory()]
    for path in CGROUP_LIMITS:
        try:
            found.append(int(path.read_text().strip()))
        except (OSError, ValueError):  # no such group, or "max": no limit
            continue
    return min(value for value in found if value > 0) if any(found) else 0


def default_limit(device: str | torch.device = "cpu") -> float:
    """The default of ``max_memory``, in bytes: :data:`DEFAULT_SHARE` of
    :func:`usable_memory` (infinite where that is unknown)."""
    device = torch.device(device)
    usable = usable_memory(device)
    return DEFAULT_SHARE.get(device.type, 0.5) * usable if usable else math.inf
