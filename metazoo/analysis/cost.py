"""Wall time and peak memory of a repeated computation (CPU on Linux, or a CUDA device).

On the CPU, peak memory is the kernel's high-water mark of the process's resident set, reset
through ``/proc/self/clear_refs`` before each measurement and read from ``/proc/self/status``;
it is reported above the level before the measurement, read after the C library has returned
its free memory to the kernel (:func:`metazoo.engine.allocator.release_free_memory`), so the
figure holds whether or not freed memory is retained for reuse. Where those files are missing
(not Linux), memory is reported as NaN. On a CUDA device the clock waits for the device after each
run, and peak memory is the caching allocator's peak of allocated bytes above the level
before.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from metazoo.engine.allocator import release_free_memory

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _kib(field: str) -> float:
    try:
        return float(re.search(rf"{field}:\s+(\d+)", STATUS.read_text()).group(1))
    except (OSError, AttributeError):
        return float("nan")


def _reset_peak() -> bool:
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of a computation above the level when :meth:`start` was called: the
    resident-set high-water mark on the CPU (MiB, NaN where it cannot be reset), the caching
    allocator's peak of allocated bytes on a CUDA device."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.before = float("nan")
        self.can_reset = False

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.before, self.can_reset = torch.cuda.memory_allocated(self.device) / 1024, True
        else:
            release_free_memory()
            self.can_reset = _reset_peak()
            self.before = _kib("VmRSS")

    def peak_mib(self) -> float:
        high = (torch.cuda.max_memory_allocated(self.device) / 1024 if self.cuda
                else _kib("VmHWM"))
        # The high-water mark can sit a page or two below the level read before (noise of the
        # resident-set accounting): report 0 then, not a negative peak.
        return max(0.0, (high - self.before) / 1024) if self.can_reset else float("nan")


def timed(step: Callable[[], object], device: str | torch.device = "cpu") -> float:
    """Seconds one call of ``step`` takes (waiting for a CUDA device before and after)."""
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()
    if cuda:
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def summarize(times: list[float]) -> dict:
    """Median and quartiles (ms) of timed runs."""
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"median_ms": 1e3 * statistics.median(times), "q25_ms": 1e3 * quartiles[0],
            "q75_ms": 1e3 * quartiles[2], "repeats": len(times)}


def measure(step: Callable[[], object], repeats: int = 5, budget: float = 10.0,
            device: str | torch.device = "cpu") -> dict:
    """Run ``step`` once to warm up, then up to ``repeats`` times (at least
    ``min(2, repeats)``, fewer if past ``budget`` seconds). Returns median and quartiles in ms,
    and peak MiB."""
    memory = PeakMemory(device)
    memory.start()
    timed(step, device)
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < repeats and (len(times) < min(2, repeats)
                                    or time.perf_counter() - began < budget):
        times.append(timed(step, device))
    return {**summarize(times), "peak_mib": memory.peak_mib()}
