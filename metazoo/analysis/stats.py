"""Small statistics for the comparison report: means with 95% intervals, paired differences,
and the split of post-adaptation loss into starting loss and adaptation gain."""

from __future__ import annotations

import math

import torch

# Two-sided 97.5% quantiles of Student's t for 1…30 degrees of freedom (normal beyond).
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t_quantile(dof: int) -> float:
    """The 0.975 quantile of Student's t with ``dof`` degrees of freedom."""
    if dof < 1:
        return float("nan")
    return _T975[dof - 1] if dof <= len(_T975) else 1.96


def mean_ci(values) -> tuple[float, float]:
    """Mean and half-width of its 95% t-interval (NaN width for a single value)."""
    data = torch.as_tensor(values, dtype=torch.float64).flatten()
    data = data[~torch.isnan(data)]
    count = data.numel()
    if count == 0:
        return float("nan"), float("nan")
    if count == 1:
        return data.item(), float("nan")
    return data.mean().item(), t_quantile(count - 1) * data.std().item() / math.sqrt(count)


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
