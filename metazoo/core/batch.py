"""Run a per-task function over a :class:`TaskBatch`: ``vmap`` or a loop, one dispatcher.

Training (the mean meta-gradient), evaluation and the analysis all map over tasks here, so
"vmap or loop" means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.func import vmap

from metazoo.types import TaskBatch

#: ``vmap`` batches tasks into one computation (fastest for MLPs); ``loop`` runs them one by
#: one (per-task weights under vmap turn convolutions into slower grouped ones on CPU).
STRATEGIES = ("vmap", "loop")


def _stack(rows: list[Any]) -> Any:
    """Stack a list of equally shaped outputs (tensors in nested dicts/tuples) on axis 0."""
    first = rows[0]
    if isinstance(first, dict):
        return {key: _stack([row[key] for row in rows]) for key in first}
    if isinstance(first, tuple):
        return type(first)(*(_stack([row[i] for row in rows]) for i in range(len(first)))) \
            if hasattr(first, "_fields") else tuple(_stack([row[i] for row in rows])
                                                    for i in range(len(first)))
    return torch.stack(rows)


def map_tasks(
    fn: Callable[[TaskBatch], Any],
    batch: TaskBatch,
    *,
    strategy: str = "vmap",
    chunk_size: int | None = None,
) -> Any:
    """``fn`` of every task of ``batch`` (one task has no leading axis), outputs stacked.

    Args:
        fn: pure function of one task returning tensors in nested dicts or tuples.
        batch: tasks stacked on a leading axis.
        strategy: ``"vmap"`` or ``"loop"``; both give the same numbers to float tolerance.
        chunk_size: with ``vmap``, at most this many tasks at once (bounds memory).

    Returns:
        ``fn``'s output structure with a leading task axis on every tensor.
    """
    if batch.num_tasks < 1:
        raise ValueError("the task batch is empty: give at least one task")
    if strategy == "vmap":
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size}")
        return vmap(fn, chunk_size=chunk_size)(batch)
    if strategy == "loop":
        return _stack([fn(batch.task(index)) for index in range(batch.num_tasks)])
    raise ValueError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")


def mean_over_tasks(
    per_task: Callable[[TaskBatch], Any],
    batch: TaskBatch,
    *,
    strategy: str = "vmap",
    chunk_size: int | None = None,
) -> Any:
    """The mean over the tasks of ``batch`` of ``per_task(task)``, leaf by leaf of its output
    (tensors in nested dicts and tuples; see :func:`map_tasks`)."""
    return _mean(map_tasks(per_task, batch, strategy=strategy, chunk_size=chunk_size))


def _mean(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {key: _mean(value) for key, value in tree.items()}
    if isinstance(tree, tuple):
        values = [_mean(value) for value in tree]
        return type(tree)(*values) if hasattr(tree, "_fields") else tuple(values)
    return tree.mean(0)
