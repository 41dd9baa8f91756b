"""How a run maps its algorithm over tasks: ``strategy="auto"`` measures, within a memory limit.

A meta-iteration runs the tasks of its batch through ``vmap`` (all at once, or ``chunk_size``
at a time) or a loop (one at a time). Which is faster depends on the workload: for fully
connected nets vmap wins by ~10×, but per-task weights turn convolutions into grouped ones,
which on the CPU can lose to a loop of ordinary ones. What fits depends on memory, which vmap
needs for every task it holds at once and the loop for one. So ``auto`` chooses in two rounds,
and never runs what its measurements predict would not fit under ``max_memory``:

1. Memory, on at most four tasks: the loop over two tasks (the least any strategy needs: the
   rehearsal has run it on one already), then vmap over two one at a time and over four two
   at a time, each tried only where what was measured before predicts that it fits. A probe's
   need is its peak above the level it leaves (what it initialised or cached
   stays for the run too), and c tasks at once need ``need(1) + (c − 1) · (need(2) − need(1))``.
   Probes of two calls see what a run of many sees: freed blocks that the next call cannot
   reuse. If not even the loop fits, the run is refused, naming what makes a task smaller.
2. Time, on one batch of up to :data:`TIMED_TASKS` tasks: the loop, and vmap with the most
   tasks at once that fit (the whole batch where it does), once each (the probes warmed both
   up), their peaks measured too. The faster of those that stayed under the limit is kept.

Memory is the whole process's: its resident set on the CPU (what an out-of-memory kill
counts), the allocated bytes on a CUDA device (:mod:`metazoo.engine.memory`). The batches come
from a generator of their own, so the training stream is unchanged. The choice, the limit and
every measurement are the run's first log record (:attr:`Choice.record`); the choice is
stored in the checkpoint, so that a resumed run keeps it.

Recomputation (MAML's ``checkpoint`` option) is not among the candidates: it is the
algorithm's own setting, stored in the run's config, so ``auto`` suggests it when nothing fits
rather than switching it on behind the config's back.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import torch

from metazoo.algorithms import State, meta_gradient
from metazoo.engine.memory import PeakMemory, can_measure, default_limit, live_bytes
from metazoo.engine.setup import Setup
from metazoo.tasks import TASKS
from metazoo.types import Params, TaskBatch

#: Tasks of the batch the candidates are timed on (a smaller meta-batch: all of it).
TIMED_TASKS = 8
#: Before vmap is tried at all, one task under it is predicted to need this multiple of the
#: loop's need (torch.func's bookkeeping, grouped convolutions; measured ratios:
#: results/auto-strategy-memory.md).
VMAP_OVER_LOOP = 2.0
#: What a message calls a byte count.
GIB = 2**30


@dataclass(frozen=True)
class Measured:
    """One meta-gradient over ``tasks`` tasks, as a probe or a timing ran it."""

    strategy: str
    chunk_size: int | None
    tasks: int
    seconds: float
    peak_bytes: float
    level_bytes: float  # the level it left behind

    @property
    def need(self) -> float:
        """Its peak above the level it left: what it needed on top of what stays."""
        return max(self.peak_bytes - self.level_bytes, 0.0)

    def as_record(self) -> dict[str, Any]:
        return {name: _number(value) for name, value in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class Choice:
    """The strategy a run executes, and (for ``auto``) its log record."""

    strategy: str
    chunk_size: int | None
    record: dict[str, Any] | None = None


def choose_strategy(setup: Setup, params: Params, state: State, device: str,
                    tasks: int | None = None) -> Choice:
    """The strategy and chunk size of the run ``setup``; ``strategy="auto"`` is resolved as the
    module docstring says, for a meta-batch of ``tasks`` tasks (this process's share of it
    under ``torchrun``; default the config's ``meta_batch``).

    Raises:
        ValueError: one line, where not even the loop over tasks fits under the limit, or
            where ``max_memory`` is given but memory cannot be measured here.
    """
    if setup.strategy != "auto":
        return Choice(setup.strategy, setup.chunk_size)
    config = setup.config
    tasks = tasks or config.meta_batch
    generator = torch.Generator().manual_seed(config.seed + 1)
    batch = setup.tasks.sample(min(tasks, TIMED_TASKS), generator).to(device, config.torch_dtype)
    measured: dict[tuple[str, int | None, int], Measured] = {}

    def run(strategy: str, chunk_size: int | None, count: int, repeats: int = 1) -> Measured:
        chunk_size = None if chunk_size is None or chunk_size >= count else chunk_size
        key = (strategy, chunk_size, count)
        if key not in measured:  # a candidate that a probe already ran is not run again
            for _ in range(repeats):  # only the last call counts: the others warm up
                measured[key] = _measure(setup, params, state, batch.slice(0, count), device,
                                         strategy, chunk_size)
        return measured[key]

    if not can_measure(device):
        if config.max_memory is not None:
            raise ValueError(f"max_memory cannot be kept on {device} here: metazoo measures "
                             "memory on Linux and on CUDA devices only; drop max_memory, or "
                             "choose the strategy yourself")
        # Without measurements, as before a limit existed: time both, keep the faster.
        timed = [run(strategy, setup.chunk_size, batch.num_tasks, repeats=2)
                 for strategy in ("vmap", "loop")]
        strategy = min(timed, key=lambda m: m.seconds).strategy
        chunk_size = setup.chunk_size if strategy == "vmap" else None
        return Choice(strategy, chunk_size, {
            "iteration": 0, "strategy": strategy, "chunk_size": chunk_size, "tasks": tasks,
            "limit_bytes": None, "candidates": [m.as_record() for m in timed]})
    limit = _limit(config.max_memory, device)
    return _within(setup, run, tasks, limit, _bytes(params))


def _within(setup: Setup, run, tasks: int, limit: float, param_bytes: int) -> Choice:
    """Rounds 1 and 2 of the module docstring, with ``run(strategy, chunk_size, count)``
    measuring one meta-gradient."""
    loop = run("loop", None, min(tasks, 2))
    # The loop's need does not grow with the tasks, but for their gradients and their stack.
    loop_need = loop.need + 2 * (tasks - loop.tasks) * param_bytes
    if loop.level_bytes + loop_need > limit:
        raise ValueError(_refusal(setup, loop.level_bytes + loop_need, limit))
    one = two = None
    if loop.level_bytes + VMAP_OVER_LOOP * loop.need <= limit:
        one = run("vmap", 1, min(tasks, 2))
        if tasks >= 2 and one.level_bytes + 2 * one.need <= limit:
            two = run("vmap", 2, min(tasks, 4))
    level = (two or one or loop).level_bytes

    def vmap_need(count: int) -> float:
        return one.need + (count - 1) * max(two.need - one.need, 0.0)

    at_once = 0  # the most tasks vmap may hold at once
    if one is not None and level + one.need <= limit:
        at_once = 1 if two is None else max(
            c for c in range(1, tasks + 1) if c == 1 or level + vmap_need(c) <= limit)
        if setup.chunk_size is not None:
            at_once = min(at_once, setup.chunk_size)
        # As many chunks as the limit asks for, as even as they go: less memory, same work.
        at_once = math.ceil(tasks / math.ceil(tasks / at_once))
    count = min(tasks, TIMED_TASKS)
    candidates = [("loop", None, level + loop_need)]
    if at_once:
        candidates.append(("vmap", None if at_once >= tasks else at_once,
                           level + (vmap_need(at_once) if two is not None else one.need)))
    rows, kept = [], []
    for strategy, chunk_size, predicted in candidates:
        timed = run(strategy, chunk_size, count)
        fits = not timed.peak_bytes > limit
        rows.append({**timed.as_record(), "chunk_size": chunk_size,
                     "predicted_bytes": _number(predicted), "fits": fits})
        if fits:
            kept.append((timed.seconds, strategy, chunk_size, predicted, timed.peak_bytes))
    if not kept:  # the loop itself went over the limit on the timing batch
        raise ValueError(_refusal(setup, run("loop", None, count).peak_bytes, limit))
    _, strategy, chunk_size, predicted, peak = min(kept, key=lambda row: row[0])
    probes = [m.as_record() for m in (loop, one, two) if m is not None]
    return Choice(strategy, chunk_size, {
        "iteration": 0, "strategy": strategy, "chunk_size": chunk_size, "tasks": tasks,
        "peak_bytes": _number(peak), "predicted_bytes": _number(predicted),
        "limit_bytes": _number(limit), "candidates": rows, "probes": probes})


def _measure(setup: Setup, params: Params, state: State, batch: TaskBatch, device: str,
             strategy: str, chunk_size: int | None) -> Measured:
    """The time and peak memory of one meta-gradient over ``batch``, and the level it leaves.

    On the CPU the time is read on the run's budget clock: under ``budget_clock="cpu"`` the
    process's CPU seconds, which other jobs on the machine do not inflate (wall-clock timing on
    a shared machine can choose the slower strategy, and a CPU budget then buys fewer
    iterations); on CUDA, elapsed seconds.
    """
    cpu = setup.config.budget_clock == "cpu" and torch.device(device).type == "cpu"
    clock = time.process_time if cpu else time.perf_counter
    # The process's high-water mark is left alone: it is the run's, for its user to read.
    with PeakMemory(device, reset=False) as memory:
        began = clock()
        meta_gradient(setup.method, setup.loss, params, state, batch, strategy=strategy,
                      chunk_size=chunk_size)
        if memory.cuda:
            torch.cuda.synchronize(device)  # kernels run asynchronously: wait for them
        seconds = clock() - began
        peak = memory.high_bytes()
    return Measured(strategy, chunk_size, batch.num_tasks, seconds, peak, live_bytes(device))


def _limit(max_memory: float | None, device: str) -> float:
    """``max_memory`` in bytes, or its default; on the CPU the default is shared among the
    processes ``torchrun`` starts on this machine, which share its memory."""
    if max_memory is not None:
        return max_memory * GIB
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    share = default_limit(device)
    return share / processes if torch.device(device).type == "cpu" else share


def _refusal(setup: Setup, needed: float, limit: float) -> str:
    """Why nothing fits, and what would: a limit that is higher, or a task that is smaller."""
    config = setup.config
    smaller = ["query_shots", "k_shot", "inner_steps"]
    if "image_size" in inspect.signature(TASKS[config.task]).parameters:
        smaller.append("image_size")
    advice = f"raise it, or lower {', '.join(smaller)} (the meta-batch does not change the loop's)"
    spec = {field.name: field for field in dataclasses.fields(setup.method.settings)}
    if "checkpoint" in spec and setup.method.settings.checkpoint is False:
        advice += (", or set the algorithm option checkpoint: "
                   + spec["checkpoint"].metadata.get("help", "recompute"))
    default = "" if config.max_memory is not None else " (its default on this machine)"
    return (f"max_memory {limit / GIB:.3g} GiB{default} is less than the {needed / GIB:.3g} "
            f"GiB this run needs with the loop over tasks, the strategy that needs least; "
            f"{advice}")


def _bytes(params: Params) -> int:
    return sum(value.numel() * value.element_size() for value in params.values())


def _number(value: float) -> float | int | None:
    """A number as JSON holds it (NaN and infinity, which JSON has not, as None)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value) if isinstance(value, float) and value.is_integer() else value
