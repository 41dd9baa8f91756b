"""Task batches and the task-distribution interface.

A task distribution samples a :class:`TaskBatch`: support and query tensors stacked on a
leading task axis, so one ``torch.func.vmap`` batches every per-task computation.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch


class TaskBatch(NamedTuple):
    """Stacked tensors of ``T`` tasks.

    Regression targets carry a trailing output axis (``[T, S, 1]``); classification
    targets are class indices (``[T, S]``, int64).
    """

    support_x: torch.Tensor  # [T, S, ...]
    support_y: torch.Tensor  # [T, S, ...]
    query_x: torch.Tensor  # [T, Q, ...]
    query_y: torch.Tensor  # [T, Q, ...]

    @property
    def num_tasks(self) -> int:
        return self.support_x.shape[0]

    def task(self, index: int) -> TaskBatch:
        """One task, without the leading axis (what a per-task function receives)."""
        return TaskBatch(*(t[index] for t in self))

    def slice(self, start: int, stop: int) -> TaskBatch:
        """Tasks ``start:stop``, keeping the leading axis."""
        return TaskBatch(*(t[start:stop] for t in self))

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TaskBatch:
        """Move to ``device``; floating tensors are also cast to ``dtype`` when given."""

        def move(t: torch.Tensor) -> torch.Tensor:
            if dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return TaskBatch(*(move(t) for t in self))


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
