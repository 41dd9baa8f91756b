"""MAML with the exact second-order meta-gradient (Finn, Abbeel & Levine, ICML 2017).

Update: ∇θ L_query(φ(θ)), φ(θ) = θ − α Σ_k ∇L_support — differentiated through all k inner
steps, so the Hessians of the support loss enter; memory grows linearly with k.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch.func import grad

from metazoo.algorithms.base import InnerLoop, register
from metazoo.core import adapt


@dataclass(frozen=True)
class MAMLSettings(InnerLoop):
    """MAML has no settings beyond the inner loop's."""


@register("maml", MAMLSettings, "second-order MAML: backpropagate through the k inner steps")
def maml(loss, params, task, settings: MAMLSettings):
    def query_loss(theta):
        adapted = adapt(
            loss, theta, task.support_x, task.support_y,
            settings.inner_steps, settings.inner_lr, differentiable=True,
        ).params
        value = loss(adapted, task.query_x, task.query_y)
        return value, value.detach()

    gradient, value = grad(query_loss, has_aux=True)(params)
    return gradient, {"loss": value}
