"""Run a per-task function over a :class:`TaskBatch` and average: ``vmap`` or a loop."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import vmap

from metazoo.types import Params, TaskBatch

PerTask = Callable[[Params, TaskBatch], tuple[Params, dict[str, torch.Tensor]]]

#: ``vmap`` batches tasks into one computation (fastest for MLPs); ``loop`` runs them one by
#: one (per-task weights under vmap turn convolutions into slower grouped ones on CPU).
STRATEGIES = ("vmap", "loop")


def mean_over_tasks(
    per_task: PerTask,
    params: Params,
    batch: TaskBatch,
    *,
    strategy: str = "vmap",
    chunk_size: int | None = None,
) -> tuple[Params, dict[str, torch.Tensor]]:
    """Average ``per_task(params, task)`` over the tasks of ``batch``.

    Args:
        per_task: pure function of (θ, one task) returning (gradient dict, scalar stats).
        params: θ, shared by every task.
        batch: tasks stacked on a leading axis.
        strategy: ``"vmap"`` or ``"loop"``; both give the same numbers to float tolerance.
        chunk_size: with ``vmap``, at most this many tasks at once (bounds memory).

    Returns:
        Mean gradient dict and mean statistics.
    """
    if strategy == "vmap":
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size}")
        grads, stats = vmap(per_task, in_dims=(None, 0), chunk_size=chunk_size)(params, batch)
        return (
            {name: g.mean(0) for name, g in grads.items()},
            {name: s.mean(0) for name, s in stats.items()},
        )
    if strategy == "loop":
        total_grads: Params | None = None
        total_stats: dict[str, torch.Tensor] | None = None
        for index in range(batch.num_tasks):
            grads, stats = per_task(params, batch.task(index))
            if total_grads is None:
                total_grads, total_stats = dict(grads), dict(stats)
            else:
                total_grads = {name: total_grads[name] + g for name, g in grads.items()}
                total_stats = {name: total_stats[name] + s for name, s in stats.items()}
        count = batch.num_tasks
        return (
            {name: g / count for name, g in total_grads.items()},
            {name: s / count for name, s in total_stats.items()},
        )
    raise ValueError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
