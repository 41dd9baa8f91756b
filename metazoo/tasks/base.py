"""Task batches and the task-distribution interface.

A task distribution samples a :class:`TaskBatch`: support and query tensors stacked on a
leading task axis, so one ``torch.func.vmap`` batches every per-task computation.
:func:`sample_batches` gives the tasks of one ``sample`` call a batch at a time, the same tasks
bit for bit, so that many held-out tasks need the memory of one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch

from metazoo.types import TaskBatch


class DataError(ValueError):
    """A data set is missing, unreadable or unusable; the message is one line naming the file
    or option and the fix."""


class TaskDistribution(Protocol):
    """What the engine needs from a task family.

    ``sample`` must draw every random number from ``generator`` (never the global RNG),
    so that the same generator state gives the same tasks. A family whose tasks hold many
    numbers (images) also draws indices first (:class:`DrawsIndices`), so that held-out
    tasks are gathered a batch at a time.
    """

    #: ``"mse"`` or ``"cross_entropy"``: the loss the engine pairs with the model.
    loss: str

    def sample(self, num_tasks: int, generator: torch.Generator) -> TaskBatch: ...


class DrawsIndices(Protocol):
    """A task family that draws its tasks as indices first, then gathers their examples:
    ``sample(n, generator)`` is ``gather(sample_indices(n, generator))``. The indices are a
    named tuple of tensors with a leading task axis, a few integers per example, and
    ``gather`` treats each task on its own, so that the tasks of one draw can be gathered a
    batch at a time (:func:`sample_batches`). Every classification family does this, and air
    quality."""

    def sample_indices(self, num_tasks: int, generator: torch.Generator) -> Any: ...

    def gather(self, indices: Any) -> TaskBatch: ...


def draws_indices(tasks: TaskDistribution) -> bool:
    """Whether ``tasks`` draws indices first (:class:`DrawsIndices`)."""
    return hasattr(tasks, "sample_indices") and hasattr(tasks, "gather")


def sample_batches(tasks: TaskDistribution, num_tasks: int, batch_size: int,
                   generator: torch.Generator) -> Iterator[TaskBatch]:
    """The tasks of ``tasks.sample(num_tasks, generator)``, bit for bit, ``batch_size`` at a
    time (the last batch may be smaller).

    A family that draws indices first (:class:`DrawsIndices`) draws those of every task now,
    with the same random numbers as ``sample``, and each batch's examples are gathered when it
    is asked for: memory holds one batch of examples, not all of them. Any other family
    (sinusoid, linear: a task's tensors are its random numbers, a few per example) is
    sampled whole, and sliced.

    Raises:
        ValueError: a count that is not a positive integer.
    """
    check_counts(num_tasks=num_tasks, batch_size=batch_size)
    starts = range(0, num_tasks, batch_size)
    if not draws_indices(tasks):
        whole = tasks.sample(num_tasks, generator)
        return (whole.slice(start, start + batch_size) for start in starts)
    indices = tasks.sample_indices(num_tasks, generator)
    return (tasks.gather(type(indices)(*(part[start:start + batch_size] for part in indices)))
            for start in starts)


#: Tasks whose random numbers :func:`in_blocks` draws in one call.
BLOCK = 1024


def in_blocks(num_tasks: int, draw: Callable[[int, int], torch.Tensor]) -> torch.Tensor:
    """``draw(start, stop)`` for tasks ``start:stop``, :data:`BLOCK` tasks at a time,
    concatenated on the task axis.

    A CPU generator gives a tensor's random numbers in order, so blocks drawn in turn hold the
    numbers of one call for every task, bit for bit (tested), while only one block's keys are
    held at once (e.g. a key per class of the pool for each task, of which ``n_way`` are kept).
    """
    return torch.cat([draw(start, min(start + BLOCK, num_tasks))
                      for start in range(0, num_tasks, BLOCK)])


def check_counts(**counts: int) -> None:
    """Raise a clear ``ValueError`` for any non-positive count."""
    for name, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
