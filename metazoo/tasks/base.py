"""Task batches and the task-distribution interface.

A task distribution samples a :class:`TaskBatch`: support and query tensors stacked on a
leading task axis, so one ``torch.func.vmap`` batches every per-task computation.
"""

from __future__ import annotations

from typing import Protocol

import torch

from metazoo.types import TaskBatch


class DataError(ValueError):
    """A data set is missing, unreadable or unusable; the message is one line naming the file
    or option and the fix."""


class TaskDistribution(Protocol):
    """What the engine needs from a task family.

    ``sample`` must draw every random number from ``generator`` (never the global RNG),
    so that the same generator state gives the same tasks.
    """

    #: ``"mse"`` or ``"cross_entropy"``: the loss the engine pairs with the model.
    loss: str

    def sample(self, num_tasks: int, generator: torch.Generator) -> TaskBatch: ...


def check_counts(**counts: int) -> None:
    """Raise a clear ``ValueError`` for any non-positive count."""
    for name, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
