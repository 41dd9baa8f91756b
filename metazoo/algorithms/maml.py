"""MAML with the exact second-order meta-gradient (Finn, Abbeel & Levine, ICML 2017).

Update: ∇θ L_query(φ(θ)), φ(θ) = θ − α Σ_k ∇L_support — differentiated through all k inner
steps, so the Hessians of the support loss enter. Differentiating directly keeps every
step's activations, so memory grows linearly with k; ``checkpoint`` instead stores only
the k iterates φ_i and, walking back, recomputes one step at a time to take its
vector-Jacobian product (g ← g − α H(φ_i) g): the same gradient, memory flat in k, about one
extra forward and backward per step.
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
from metazoo.options import option
from metazoo.space import SHARED


@dataclass(frozen=True)
class MAMLSettings(Settings):
    checkpoint: bool = option(
        False, "recompute inner steps in the backward pass (memory flat in k)",
        formerly="maml_checkpoint")


def make(settings: MAMLSettings) -> Method:
    """MAML with ``settings``: plain SGD inner steps, differentiated through."""
    from torch.func import vjp

    from metazoo.core import adapt, sgd, tree_detach
    from metazoo.core.autodiff import grad

    optimizer = sgd(settings.inner_lr)

    def meta_gradient(loss, params, state, task):
        def inner(theta, steps):
            return adapt(loss, theta, task.support_x, task.support_y, steps, optimizer,
                         differentiable=True).params

        def query_loss(phi):
            value = loss(phi, task.query_x, task.query_y)
            return value, value.detach()

        if not settings.checkpoint:
            gradient, value = grad(lambda theta: query_loss(inner(theta, settings.inner_steps)),
                                   has_aux=True)(params)
            return gradient, {"loss": value}, state

        path = [tree_detach(params)]  # φ_0 … φ_k, no graphs kept
        for _ in range(settings.inner_steps):
            path.append(tree_detach(inner(path[-1], 1)))
        gradient, value = grad(query_loss, has_aux=True)(path.pop())
        for phi in reversed(path):
            _, step_vjp = vjp(lambda theta: inner(theta, 1), phi)
            (gradient,) = step_vjp(gradient)
        return gradient, {"loss": value}, state

    return Method("maml", settings, plain_init, meta_gradient, sgd_adapt(settings), model_itself)


# The options worth searching (``metazoo tune``): the shared ones, each range with its reason.
SPACE = SHARED


register(Algorithm("maml", "second-order MAML: backpropagate through the k inner steps",
                   MAMLSettings, make, space=SPACE))
