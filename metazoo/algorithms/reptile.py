"""Reptile (Nichol, Achiam & Schulman, 2018, "On First-Order Meta-Learning Algorithms").

Update direction: θ − φ, with φ after k SGD steps on the task's data. Fed to plain SGD with
step ε this is the paper's θ ← θ + ε(φ − θ) (batched version, averaged over tasks; anneal ε
with an SGD outer optimizer and a linear schedule). Adam is invariant to its scale, so the
direction can also be given to Adam. Reptile makes no support/query distinction: by default
the inner steps use all of a task's examples (with k = 1 the direction is then exactly
α·∇L(θ; support ∪ query), joint training's).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from metazoo.algorithms.base import Settings, option, register
from metazoo.core import adapt, tree_detach, tree_sub


@dataclass(frozen=True)
class ReptileSettings(Settings):
    data: str = option("all", "data of the inner steps: 'all' (support ∪ query) or 'support'",
                       formerly="reptile_data")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.data not in ("all", "support"):
            raise ValueError(f"data must be 'all' or 'support', got {self.data!r}")


def as_gradient(settings: ReptileSettings, direction):
    """θ − φ over kα: with k = 1 (and the same data) exactly the gradient at θ."""
    scale = settings.inner_steps * settings.inner_lr
    return {name: d / scale for name, d in direction.items()} if scale else direction


def variants(settings: ReptileSettings):
    """Fidelity to MAML's support → query meta-gradient: Reptile on the support set only."""
    return {"reptile (support)": dataclasses.replace(settings, data="support")}


@register("reptile", ReptileSettings, "Reptile: move θ toward φ after k steps (θ − φ)",
          as_gradient=as_gradient, variants=variants, approximates="maml")
def reptile(loss, params, task, settings: ReptileSettings):
    if settings.data == "all":
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
