"""Linear-regression tasks: quadratic losses whose meta-gradients have closed forms.

Task weights ``w ~ N(mean, scale² I)``, inputs ``x ~ N(0, I)``, targets ``y = w·x + ε``
with ``ε ~ N(0, noise²)``. With a linear model every loss is a quadratic in the
parameters, so MAML's and iMAML's meta-gradients can be written down exactly; the tests
use this, and ``dim=2`` tasks give loss surfaces that can be drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metazoo.tasks.base import TaskBatch, check_counts
from metazoo.tasks.inputs import TableInputs, option


@dataclass(frozen=True)
class LinearRegression:
    """Linear-regression tasks in ``dim`` dimensions."""

    dim: int = 2
    k_shot: int = 10
    query_shots: int = 10
    weight_mean: float = 0.0
    weight_scale: float = 1.0
    noise: float = 0.0
    loss: str = "mse"

    def __post_init__(self) -> None:
        check_counts(dim=self.dim, k_shot=self.k_shot, query_shots=self.query_shots)
        if self.noise < 0 or self.weight_scale < 0:
            raise ValueError("noise and weight_scale must be non-negative")

    @classmethod
    def file_inputs(cls, **options) -> TableInputs:
        """A table of ``dim`` inputs and one target (see :mod:`metazoo.tasks.inputs`)."""
        return TableInputs(features=option(cls, options, "dim"), targets=1)

    def sample(self, num_tasks: int, generator: torch.Generator) -> TaskBatch:
        check_counts(num_tasks=num_tasks)
        weights = self.weight_mean + self.weight_scale * torch.randn(
            (num_tasks, self.dim, 1), generator=generator
        )  # [T, D, 1]

        def points(count: int) -> tuple[torch.Tensor, torch.Tensor]:
            x = torch.randn((num_tasks, count, self.dim), generator=generator)  # [T, N, D]
            noise = self.noise * torch.randn((num_tasks, count, 1), generator=generator)
            return x, x @ weights + noise  # y: [T, N, 1]

        return TaskBatch(*points(self.k_shot), *points(self.query_shots))
