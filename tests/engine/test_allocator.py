"""retain_freed_memory: freed blocks are reused instead of being paged in again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from metazoo.engine.allocator import _glibc

# Allocate and free the same 64 MiB tensor sixteen times; print the minor page faults of the
# last six (glibc settles its heap over the first few, how many depending on what the
# interpreter allocated before). Each run is a fresh interpreter: the setting is process-wide.
SCRIPT = """
import resource, sys, torch
from metazoo.engine.allocator import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory() is True
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    x = torch.ones(16 << 20); del x  # 64 MiB
before = faults()
for _ in range(6):
    x = torch.ones(16 << 20); del x
print(faults() - before)
"""


def _faults(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True,
                            text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(_glibc() is None, reason="needs glibc malloc")
def test_retained_memory_is_not_paged_in_again():
    system, retained = _faults("system"), _faults("retain")
    # glibc's default mmaps each 64 MiB block afresh, so every allocation faults its pages in
    # again: at least once per 2 MiB even where transparent huge pages are on.
    assert system >= 6 * (64 // 2)
    # Retained: the freed block is reused, so pages are rarely touched for the first time
    # (in most runs none is; now and then glibc places one block afresh).
    assert retained <= system // 3


def test_retain_memory_is_ignored_when_resuming_but_other_options_are_not():
    from metazoo.engine import TrainConfig

    stored = TrainConfig(retain_memory=True)
    assert stored.differences(TrainConfig(retain_memory=False), ignore=("retain_memory",)) == []
    assert stored.differences(TrainConfig(seed=1), ignore=("retain_memory",)) == ["seed"]


MEASURE = """
import torch
from metazoo.analysis.cost import measure
from metazoo.engine.allocator import retain_freed_memory
assert retain_freed_memory() is True
def step(blocks):
    live = [torch.ones(1 << 20) for _ in range(blocks)]  # blocks × 4 MiB at once
    return sum(x.sum() for x in live)
print(*(measure(lambda: step(n), repeats=2, budget=0)["peak_mib"] for n in (40, 10, 40)))
"""


@pytest.mark.skipif(_glibc() is None or not Path("/proc/self/clear_refs").exists(),
                    reason="needs glibc malloc and Linux's resident-set accounting")
def test_measure_reads_the_peak_even_when_freed_memory_is_retained():
    result = subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True,
                            check=True)
    big, small, big_again = map(float, result.stdout.split())
    # 160 MiB live at the peak, then 40 MiB. Without releasing the retained blocks before
    # reading the base level, the second 160 MiB step would read as (almost) nothing new.
    assert 150 <= big < 200 and 35 <= small < 60 and 150 <= big_again < 200
