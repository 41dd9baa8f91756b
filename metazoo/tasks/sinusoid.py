"""Sinusoid regression, the protocol of Finn et al., 2017 (MAML), section 5.1.

Each task is ``y = A sin(x - b)`` with amplitude ``A ~ U[0.1, 5]``, phase ``b ~ U[0, π]``
and inputs ``x ~ U[-5, 5]``; support and query points are drawn independently from the
same task. Loss: mean squared error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from metazoo.tasks.base import TaskBatch, check_counts
from metazoo.tasks.inputs import TableInputs


@dataclass(frozen=True)
class Sinusoid:
    """Sinusoid regression tasks with ``k_shot`` support and ``query_shots`` query points."""

    k_shot: int = 10
    query_shots: int = 10
    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)
    loss: str = "mse"

    def __post_init__(self) -> None:
        check_counts(k_shot=self.k_shot, query_shots=self.query_shots)

    @classmethod
    def file_inputs(cls, **options) -> TableInputs:
        """A table of x and y (see :mod:`metazoo.tasks.inputs`)."""
        return TableInputs(features=1, targets=1)

    def sample(self, num_tasks: int, generator: torch.Generator) -> TaskBatch:
        check_counts(num_tasks=num_tasks)

        def uniform(shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(shape, generator=generator)

        amplitude = uniform((num_tasks, 1, 1), *self.amplitude)  # [T, 1, 1]
        phase = uniform((num_tasks, 1, 1), *self.phase)  # [T, 1, 1]
        support_x = uniform((num_tasks, self.k_shot, 1), *self.x_range)  # [T, K, 1]
        query_x = uniform((num_tasks, self.query_shots, 1), *self.x_range)  # [T, Q, 1]
        return TaskBatch(
            support_x,
            amplitude * torch.sin(support_x - phase),
            query_x,
            amplitude * torch.sin(query_x - phase),
        )
