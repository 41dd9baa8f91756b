"""Wall time and peak memory of a repeated computation (CPU on Linux, or a CUDA device).

On the CPU, peak memory is the kernel's high-water mark of the process's resident set, reset
through ``/proc/self/clear_refs`` before each measurement and read from ``/proc/self/status``;
it is reported above the level before the measurement, read after the C library has returned
its free memory to the kernel (:func:`metazoo.engine.allocator.release_free_memory`), so the
figure holds whether or not freed memory is retained for reuse. Where those files are missing (not
Linux), memory is reported as NaN. On a CUDA device the clock waits for the device after each
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


def measure(step: Callable[[], object], repeats: int = 5, budget: float = 10.0,
            device: str | torch.device = "cpu") -> dict:
    """Run ``step`` once to warm up, then up to ``repeats`` times (at least
    ``min(2, repeats)``, fewer if past ``budget`` seconds). Returns median and quartiles in ms,
    and peak MiB."""
    cuda = torch.device(device).type == "cuda"

    def wait() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    if cuda:
        wait()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device) / 1024
        can_reset = True
    else:
        release_free_memory()
        can_reset = _reset_peak()
        before = _kib("VmRSS")
    step()
    wait()
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < repeats and (len(times) < min(2, repeats)
                                    or time.perf_counter() - began < budget):
        start = time.perf_counter()
        step()
        wait()
        times.append(time.perf_counter() - start)
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    # The high-water mark can sit a page or two below the level read before (noise of the
    # resident-set accounting): report 0 then, not a negative peak.
    high = torch.cuda.max_memory_allocated(device) / 1024 if cuda else _kib("VmHWM")
    peak = max(0.0, (high - before) / 1024) if can_reset else float("nan")
    return {"median_ms": 1e3 * statistics.median(times), "q25_ms": 1e3 * quartiles[0],
            "q75_ms": 1e3 * quartiles[2], "repeats": len(times), "peak_mib": peak}
