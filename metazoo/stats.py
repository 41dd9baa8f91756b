"""Means with 95% intervals: the one estimator every table of metazoo uses.

Student's t with n − 1 degrees of freedom (for hundreds of tasks it is the normal 1.96 to
the third digit; for a few seeds it is much wider, as it must be).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Two-sided 97.5% quantiles of Student's t for 1…30 degrees of freedom.
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t_quantile(dof: int) -> float:
    """The 0.975 quantile of Student's t with ``dof`` degrees of freedom.

    Beyond the table, the Cornish–Fisher expansion z + (z³ + z)/(4·dof) (error < 1e-3 for
    dof > 30)."""
    if dof < 1:
        return float("nan")
    if dof <= len(_T975):
        return _T975[dof - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * dof)


def mean_ci(values, drop_nan: bool = True) -> tuple[float, float]:
    """Mean and half-width of its 95% t-interval (NaN width for one value).

    With ``drop_nan`` (the default for summaries over runs) NaN values are left out; without
    it a NaN or infinite value makes the mean NaN or infinite, as a diverged task should.
    """
    data = torch.as_tensor(values, dtype=torch.float64).flatten()
    if drop_nan:
        data = data[~torch.isnan(data)]
    count = data.numel()
    if count == 0:
        return float("nan"), float("nan")
    if count == 1:
        return data.item(), float("nan")
    return data.mean().item(), t_quantile(count - 1) * data.std().item() / math.sqrt(count)


@dataclass(frozen=True)
class Estimate:
    """A mean and the half-width of its 95% t-interval."""

    mean: float
    ci95: float

    @classmethod
    def of(cls, values) -> Estimate:
        return cls(*mean_ci(values, drop_nan=False))

    def __str__(self) -> str:
        if math.isnan(self.ci95):
            return f"{self.mean:.4g}"
        return f"{self.mean:.4g} ± {self.ci95:.2g}"
