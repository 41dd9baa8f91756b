"""Joint (multi-task) training: the baseline with no inner loop.

Update: ∇θ L(θ; support ∪ query) — ordinary SGD on batches of mixed tasks
(Caruana, 1997; the "pretrain then fine-tune" baseline of Finn et al., 2017).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metazoo.algorithms.base import Settings, register
from metazoo.core.autodiff import grad


@dataclass(frozen=True)
class JointSettings(Settings):
    """Joint training takes no inner step; ``inner_*`` apply to test-time fine-tuning."""


@register("joint", JointSettings, "multi-task baseline: gradient at θ on all of a task's data")
def joint(loss, params, task, settings: JointSettings):
    x = torch.cat([task.support_x, task.query_x])  # [S+Q, ...]
    y = torch.cat([task.support_y, task.query_y])

    def objective(theta):
        value = loss(theta, x, y)
        return value, value.detach()

    gradient, value = grad(objective, has_aux=True)(params)
    return gradient, {"loss": value}


# The options worth searching (``metazoo tune``): joint training takes no inner step, so of
# the inner loop only the step size of test-time fine-tuning is searched.
from metazoo.search.space import shared_without

SPACE = shared_without("inner_steps")
