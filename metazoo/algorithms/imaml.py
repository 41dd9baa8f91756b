"""Implicit MAML (Rajeswaran, Finn, Kakade & Levine, NeurIPS 2019).

Inner problem: φ ≈ argmin_φ L_support(φ) + λ/2 ‖φ − θ‖². At its minimum dφ/dθ =
(I + H/λ)⁻¹ with H = ∇²L_support(φ), so the meta-gradient is g solving
(I + H/λ) g = ∇L_query(φ). It reads as the three pieces of implicit differentiation:
the inner solver (:func:`adapt` with the proximal term), the optimality condition (whose
Jacobian gives the operator below) and the linear solver (conjugate gradient with
Hessian-vector products). Memory does not grow with k: nothing is differentiated through
the inner loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch.func import vjp

from metazoo.algorithms.base import InnerLoop, option, register
from metazoo.core import adapt, tree_axpy, tree_detach
from metazoo.core.autodiff import grad
from metazoo.core.linalg import conjugate_gradient


@dataclass(frozen=True)
class IMAMLSettings(InnerLoop):
    imaml_lambda: float = option(1.0, "iMAML proximal strength λ of the inner problem")
    cg_steps: int = option(5, "iMAML conjugate-gradient steps (fixed; exact at the dimension)")
    cg_damping: float = option(
        0.0, "iMAML damping δ: CG solves ((1 + δ)I + H/λ) g = ∇L_query(φ)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.imaml_lambda) and self.imaml_lambda > 0):
            raise ValueError(f"imaml_lambda must be > 0, got {self.imaml_lambda!r} (--imaml-lambda)")
        if not isinstance(self.cg_steps, int) or self.cg_steps < 1:
            raise ValueError(f"cg_steps must be an integer >= 1, got {self.cg_steps!r} (--cg-steps)")
        if not (math.isfinite(self.cg_damping) and self.cg_damping >= 0):
            raise ValueError(f"cg_damping must be >= 0, got {self.cg_damping!r} (--cg-damping)")

    @property
    def regularization(self) -> float:
        return self.imaml_lambda


@register("imaml", IMAMLSettings, "implicit MAML: CG solve of (I + H/λ) g = ∇L_query(φ)")
def imaml(loss, params, task, settings: IMAMLSettings):
    theta = tree_detach(params)
    # 1. Inner solver: k steps on the proximally regularised support loss.
    adapted = adapt(
        loss, theta, task.support_x, task.support_y, settings.inner_steps, settings.inner_lr,
        anchor=theta, regularization=settings.imaml_lambda,
    ).params

    # 2. Optimality condition ∇L_support(φ) + λ(φ − θ) = 0; its Jacobian in φ is H + λI.
    # H is symmetric, so H v is the vector-Jacobian product of the gradient map; one
    # linearisation at φ serves every CG step (reverse-over-reverse).
    _, gradient_vjp = vjp(grad(lambda phi: loss(phi, task.support_x, task.support_y)), adapted)

    def operator(vector):
        # ((1 + δ) I + H/λ) v
        (hessian_vector,) = gradient_vjp(vector)
        return tree_axpy(
            1.0 / settings.imaml_lambda, hessian_vector,
            {name: (1.0 + settings.cg_damping) * v for name, v in vector.items()},
        )

    # 3. Linear solver.
    def query_loss(phi):
        value = loss(phi, task.query_x, task.query_y)
        return value, value.detach()

    query_grad, value = grad(query_loss, has_aux=True)(adapted)
    meta_grad, residual = conjugate_gradient(operator, query_grad, settings.cg_steps)
    return meta_grad, {"loss": value, "cg_residual": residual.detach()}
