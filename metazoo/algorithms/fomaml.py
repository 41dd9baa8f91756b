"""First-order MAML (Finn, Abbeel & Levine, ICML 2017, section 5.2).

Update: ∇φ L_query(φ) with φ = θ − α Σ_k ∇L_support computed with the inner gradients
treated as constants, i.e. MAML's meta-gradient with every Hessian term dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from metazoo.algorithms.base import (
    Algorithm,
    Analysis,
    Method,
    Settings,
    model_itself,
    plain_init,
    register,
    sgd_adapt,
    sgd_rule,
)
from metazoo.space import SHARED


@dataclass(frozen=True)
class FOMAMLSettings(Settings):
    """First-order MAML has no settings beyond the inner loop's."""


def make(settings: FOMAMLSettings) -> Method:
    """First-order MAML with ``settings``: the query gradient at φ, applied to θ."""
    from metazoo.core import adapt, sgd, tree_detach
    from metazoo.core.autodiff import grad

    optimizer = sgd(settings.inner_lr)

    def meta_gradient(loss, params, state, task):
        adapted = adapt(loss, tree_detach(params), task.support_x, task.support_y,
                        settings.inner_steps, optimizer).params

        def query_loss(phi):
            value = loss(phi, task.query_x, task.query_y)
            return value, value.detach()

        gradient, value = grad(query_loss, has_aux=True)(adapted)
        return gradient, {"loss": value}, state

    return Method("fomaml", settings, plain_init, meta_gradient, sgd_adapt(settings),
                  model_itself)


def analysis(settings: FOMAMLSettings) -> Analysis:
    return Analysis(test_rule=sgd_rule(settings), approximates="maml")


# The options worth searching (``metazoo tune``): the shared ones, each range with its reason.
SPACE = SHARED


register(Algorithm("fomaml", "first-order MAML: query gradient at φ, applied to θ",
                   FOMAMLSettings, make, analysis, space=SPACE))
