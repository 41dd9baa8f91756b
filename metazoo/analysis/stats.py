"""Small statistics for the comparison report: means with 95% intervals, paired differences,
and the split of post-adaptation loss into starting loss and adaptation gain."""

from __future__ import annotations

import torch

from metazoo.stats import mean_ci, t_quantile

__all__ = ["matched_gain", "mean_ci", "t_quantile"]

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
