"""The statistics every table of metazoo uses: means with 95% intervals, differences paired by
seed with their verdict, and the split of post-adaptation loss into starting loss and gain.

Intervals are Student's t with n − 1 degrees of freedom (for hundreds of tasks it is the
normal 1.96 to the third digit; for a few seeds it is much wider, as it must be).
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


@dataclass(frozen=True)
class Difference:
    """A mean difference between two methods, first − second, with its 95% half-width.

    ``diverged``: some value was NaN or infinite, so no difference is stated.
    """

    mean: float
    ci95: float
    diverged: bool = False

    @property
    def resolved(self) -> bool:
        """Whether the 95% interval excludes zero."""
        return not self.diverged and not math.isnan(self.ci95) and abs(self.mean) > self.ci95

    def winner(self, first: str, second: str, higher_is_better: bool) -> str | None:
        """The better of the two where the difference is resolved, else None."""
        if not self.resolved:
            return None
        return first if (self.mean > 0) == higher_is_better else second


def differences_by_seed(first: dict, second: dict) -> list[float]:
    """first − second for each seed both have (``{seed: value}`` each), in ``first``'s order."""
    return [first[seed] - second[seed] for seed in first if seed in second]


def paired_by_seed(first: dict, second: dict) -> Difference:
    """first − second over the seeds both have (``{seed: value}`` each), with the t-interval
    of the paired differences: both runs of a seed saw the same task stream and are scored
    on the same held-out tasks, so pairing removes what the seeds share."""
    paired = differences_by_seed(first, second)
    diverged = not all(math.isfinite(value) for value in paired)
    return Difference(*mean_ci(paired), diverged=diverged)


def matched_gain(pre: dict[str, torch.Tensor], post: dict[str, torch.Tensor], bins: int = 5,
                 min_count: int = 5) -> dict:
    """Adaptation gain (pre − post) compared at equal starting loss.

    All (θ, task) pairs are pooled and cut into ``bins`` quantile bins of pre-adaptation
    loss. Within a bin every θ starts from about the same loss, so differences in gain there
    reflect how easily θ is optimised, not how good it already is. A bin counts only where
    every θ has at least ``min_count`` tasks; the matched gain of θ is the mean, over those
    bins with equal weight, of its mean gain in the bin.

    Returns:
        ``{"edges": [bins + 1], "per_bin": {name: [mean gain or NaN]}, "counts": {name: [n]},
        "matched": {name: float}, "bins_used": int}``.
    """
    names = list(pre)
    pooled = torch.cat([pre[n].double() for n in names])
    edges = torch.quantile(pooled, torch.linspace(0, 1, bins + 1, dtype=torch.float64))
    per_bin: dict[str, list[float]] = {n: [] for n in names}
    counts: dict[str, list[int]] = {n: [] for n in names}
    for b in range(bins):
        low, high = edges[b], edges[b + 1]
        for n in names:
            start = pre[n].double()
            inside = (start >= low) & ((start < high) if b < bins - 1 else (start <= high))
            counts[n].append(int(inside.sum()))
            gain = (pre[n] - post[n]).double()[inside]
            per_bin[n].append(gain.mean().item() if inside.any() else float("nan"))
    usable = [b for b in range(bins) if all(counts[n][b] >= min_count for n in names)]
    matched = {n: (sum(per_bin[n][b] for b in usable) / len(usable)) if usable else float("nan")
               for n in names}
    return {"edges": edges.tolist(), "per_bin": per_bin, "counts": counts, "matched": matched,
            "bins_used": len(usable)}
