"""Reptile (Nichol, Achiam & Schulman, 2018, "On First-Order Meta-Learning Algorithms").

Update direction: θ − φ, with φ after k SGD steps on the task's data. Fed to plain SGD with
step ε this is the paper's θ ← θ + ε(φ − θ) (batched version, averaged over tasks; anneal ε
with ``--outer-optimizer sgd --lr-schedule linear``). Adam is invariant to its scale, so the
direction can also be given to Adam. Reptile makes no support/query distinction: by default
the inner steps use all of a task's examples (with k = 1 the direction is then exactly
α·∇L(θ; support ∪ query), joint training's).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metazoo.algorithms.base import InnerLoop, option, register
from metazoo.core import adapt, tree_detach, tree_sub


@dataclass(frozen=True)
class ReptileSettings(InnerLoop):
    reptile_data: str = option(
        "all", "data of Reptile's inner steps: 'all' (support ∪ query) or 'support'"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reptile_data not in ("all", "support"):
            raise ValueError(
                f"reptile_data must be 'all' or 'support', got {self.reptile_data!r} (--reptile-data)"
            )


@register("reptile", ReptileSettings, "Reptile: move θ toward φ after k steps (θ − φ)")
def reptile(loss, params, task, settings: ReptileSettings):
    if settings.reptile_data == "all":
        x = torch.cat([task.support_x, task.query_x])  # [S+Q, ...]
        y = torch.cat([task.support_y, task.query_y])
    else:
        x, y = task.support_x, task.support_y
    theta = tree_detach(params)
    # The logged loss is the inner objective where the last step began (the loss at θ when
    # k = 1): a by-product of the steps. The loss at φ itself would cost one more forward
    # pass over all of the task's data, a third of the work of a step.
    adapted = adapt(loss, theta, x, y, settings.inner_steps, settings.inner_lr)
    last = adapted.losses[-1] if settings.inner_steps else loss(theta, x, y).detach()
    return tree_sub(theta, adapted.params), {"loss": last}
