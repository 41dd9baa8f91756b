"""Wall time and peak memory of a repeated computation (CPU on Linux, or a CUDA device).

Peak memory is measured as :class:`metazoo.engine.memory.PeakMemory` says: on the CPU the
resident set's high-water mark above the level before, with free memory returned to the kernel
first; NaN where that cannot be read (not Linux). On a CUDA device the clock waits for the
device after each run, and peak memory is the caching allocator's peak of allocated bytes
above the level before.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from metazoo.engine.memory import PeakMemory

__all__ = ["PeakMemory", "measure", "summarize", "timed"]


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
