"""Joint (multi-task) training: the baseline with no inner loop.

Update: ∇θ L(θ; support ∪ query) — ordinary SGD on batches of mixed tasks
(Caruana, 1997; the "pretrain then fine-tune" baseline of Finn et al., 2017).
"""

from __future__ import annotations

from dataclasses import dataclass

from metazoo.algorithms.base import (
    Algorithm,
    Method,
    Settings,
    model_itself,
    plain_init,
    register,
    sgd_adapt,
)
from metazoo.space import shared_without


@dataclass(frozen=True)
class JointSettings(Settings):
    """Joint training takes no inner step; ``inner_*`` apply to test-time fine-tuning."""


def make(settings: JointSettings) -> Method:
    """Joint training: the gradient at θ on all of a task's data; fine-tuned by SGD."""
    import torch

    from metazoo.core.autodiff import grad


    def meta_gradient(loss, params, state, task):
        x = torch.cat([task.support_x, task.query_x])  # [S+Q, ...]
        y = torch.cat([task.support_y, task.query_y])

        def objective(theta):
            value = loss(theta, x, y)
            return value, value.detach()

        gradient, value = grad(objective, has_aux=True)(params)
        return gradient, {"loss": value}, state

    return Method("joint", settings, plain_init, meta_gradient, sgd_adapt(settings),
                  model_itself)


# The options worth searching (``metazoo tune``): joint training takes no inner step, so of
# the inner loop only the step size of test-time fine-tuning is searched.
SPACE = shared_without("inner_steps")


register(Algorithm("joint", "multi-task baseline: gradient at θ on all of a task's data",
                   JointSettings, make, space=SPACE))
