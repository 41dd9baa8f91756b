"""The sections of the ``metazoo compare`` report, one module each. Each computes its numbers
from the runs of a finished grid and phrases them as report blocks (a table, a figure to draw,
statements derived from the numbers); :func:`metazoo.analysis.report.write_report` writes them.
No method is named here: pairs and contests come from the registry
(:mod:`metazoo.analysis.methods`).

1. :mod:`.second_order` — does second-order information beat first-order, and at which k
   does the gap close? (and :mod:`.contests`, the head-to-head contests the registry
   declares, e.g. iMAML against Reptile)
2. :mod:`.start_or_gain` — is a learned θ good because its own loss is low, or because it is
   easy to optimise from?
3. :mod:`.paths` — what do the inner update paths look like?
4. :mod:`.fidelity` — how faithful is each cheap meta-gradient to the exact one it
   approximates?
5. :mod:`.cost_by_k` — what does each cost, in time and memory, as k grows?
"""

from __future__ import annotations

import math

import torch

from metazoo.analysis.config import CompareConfig


def analysis_tasks(setup, config: CompareConfig):
    """The held-out tasks of the path and fidelity measurements, the same for every run."""
    generator = torch.Generator().manual_seed(setup.config.eval_seed + 1)
    return setup.eval_tasks.sample(config.analysis_tasks, generator).to(
        setup.config.device, setup.config.torch_dtype)


def finite_mean(values) -> float:
    """The mean, or +inf where any value diverged (so a diverged θ ranks last)."""
    data = torch.as_tensor(values, dtype=torch.float64).flatten()
    return data.mean().item() if bool(torch.isfinite(data).all()) else math.inf


def drawable(values) -> float:
    """A bar's height: the mean, or NaN (no bar) where it diverged."""
    mean = finite_mean(values)
    return mean if math.isfinite(mean) else float("nan")
