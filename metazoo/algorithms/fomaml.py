"""First-order MAML (Finn, Abbeel & Levine, ICML 2017, section 5.2).

Update: ∇φ L_query(φ) with φ = θ − α Σ_k ∇L_support computed with the inner gradients
treated as constants, i.e. MAML's meta-gradient with every Hessian term dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from metazoo.algorithms.base import Settings, register
from metazoo.core import adapt, tree_detach
from metazoo.core.autodiff import grad


@dataclass(frozen=True)
class FOMAMLSettings(Settings):
    """First-order MAML has no settings beyond the inner loop's."""


@register("fomaml", FOMAMLSettings, "first-order MAML: query gradient at φ, applied to θ",
          approximates="maml")
def fomaml(loss, params, task, settings: FOMAMLSettings):
    adapted = adapt(
        loss, tree_detach(params), task.support_x, task.support_y,
        settings.inner_steps, settings.inner_lr,
    ).params

    def query_loss(phi):
        value = loss(phi, task.query_x, task.query_y)
        return value, value.detach()

    gradient, value = grad(query_loss, has_aux=True)(adapted)
    return gradient, {"loss": value}


# The options worth searching (``metazoo tune``): the shared ones, each range with its reason.
from metazoo.search.space import SHARED

SPACE = SHARED
