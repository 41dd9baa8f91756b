"""Peak memory without touching the process's own high-water mark, and this machine's memory."""

import subprocess
import sys

import pytest

from metazoo.engine import memory
from metazoo.engine.memory import can_measure, default_limit, usable_memory

UNRESET = """
import time, torch
from metazoo.engine.memory import PeakMemory, _kib

def hold(mib, seconds=0.0):
    block = torch.ones(mib << 18)  # mib MiB of float32
    time.sleep(seconds)
    return block.sum()

def peak(mib, seconds=0.0):
    with PeakMemory(reset=False) as meter:
        hold(mib, seconds)
        return meter.peak_mib()

first = peak(300)          # above anything before: the kernel's mark says it exactly
second = peak(100, 0.05)   # below the mark: sampled, while it is held
print(first, second, _kib("VmHWM") / 1024)
"""


@pytest.mark.skipif(not can_measure("cpu"), reason="needs Linux's resident-set accounting")
def test_a_peak_read_without_resetting_the_mark():
    result = subprocess.run([sys.executable, "-c", UNRESET], capture_output=True, text=True,
                            check=True)
    first, second, mark = map(float, result.stdout.split())
    assert 290 <= first < 330
    assert 90 <= second < 130
    # The process's own mark still holds its first peak, as /usr/bin/time would report it.
    assert mark >= 300


def test_usable_memory_is_the_lower_of_the_machine_and_its_control_group(tmp_path, monkeypatch):
    limit = tmp_path / "memory.max"
    monkeypatch.setattr(memory, "CGROUP_LIMITS", (limit, tmp_path / "absent"))
    monkeypatch.setattr(memory, "physical_memory", lambda: 64 << 30)
    limit.write_text("max\n")  # no limit
    assert usable_memory("cpu") == 64 << 30
    limit.write_text(f"{8 << 30}\n")
    assert usable_memory("cpu") == 8 << 30
    assert default_limit("cpu") == 4 << 30  # half of it
    monkeypatch.setattr(memory, "physical_memory", lambda: 0)
    assert usable_memory("cpu") == 8 << 30
    limit.write_text("max\n")
    assert usable_memory("cpu") == 0 and default_limit("cpu") == float("inf")
