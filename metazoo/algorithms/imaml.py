"""Implicit MAML (Rajeswaran, Finn, Kakade & Levine, NeurIPS 2019).

Inner problem: φ ≈ argmin_φ L_support(φ) + λ/2 ‖φ − θ‖². At its minimum dφ/dθ =
(I + H/λ)⁻¹ with H = ∇²L_support(φ), so the meta-gradient is g solving
(I + H/λ) g = ∇L_query(φ). It reads as the three pieces of implicit differentiation:
the inner solver (:func:`adapt` with the proximal term), the optimality condition (whose
Jacobian gives the operator below) and the linear solver (conjugate gradient with
Hessian-vector products). Memory does not grow with k: nothing is differentiated through
the inner loop.

The authors' released code (aravindr93/imaml_dev, Omniglot) departs from that textbook form
in three ways, each a setting here: its inner loop takes k plain steps on the support loss and
then one step on the proximal term alone (``inner_proximal=False``); its CG operator is
(1 + δ)I + H/(λ + λ_d) with δ = 1, λ_d = 10 (``cg_damping``, ``lam_damping``); and it
evaluates without the proximal term (``test_proximal=False``, the default here too).

The paper's second variant, "Hessian-free", solves the inner problem by Newton–CG instead:
5 CG steps for each search direction and a line search for its length (Table 2; 99.50% on
Omniglot 5-way 1-shot against 99.16% with gradient descent). ``inner_solver="newton"`` runs
that solver (:func:`metazoo.core.newton.newton`) in training and at test time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from metazoo.algorithms.base import (
    Algorithm,
    Analysis,
    Method,
    Settings,
    model_itself,
    plain_init,
    register,
    sgd_rule,
)
from metazoo.options import option, positive_float, positive_int
from metazoo.space import (
    Choice,
    Float,
    Int,
    When,
    replace_entries,
    shared_without,
)


@dataclass(frozen=True)
class IMAMLSettings(Settings):
    # The defaults are the paper's Hessian-free variant (k = 3 Newton–CG steps on the proximal
    # problem, in training and at test time). With gradient steps the implicit gradient
    # rewards a sharper θ without limit while the explicit steps that compute φ overshoot
    # and diverge; a Newton step does not. The choice of λ and the gradient-step values are
    # measured in results/imaml-sinusoid.md; the Omniglot preset sets the authors' values.
    inner_steps: int = option(3, "inner steps k per task while meta-training (Newton steps with "
                              "inner_solver 'newton')")
    inner_lr: float = option(0.005, "inner SGD step size α, and of the test steps (inner_solver "
                             "'gd' only)")
    lam: float = option(40.0, "proximal strength λ of the inner problem",
                        formerly="imaml_lambda")
    cg_steps: int = option(5, "conjugate-gradient steps (fixed; exact at the dimension)")
    cg_damping: float = option(0.0, "damping δ: CG solves ((1 + δ)I + H/λ) g = ∇L_query(φ)")
    lam_damping: float = option(
        0.0, "λ_d: CG solves ((1 + δ)I + H/(λ + λ_d)) g = ∇L_query(φ) (the authors' code: 10)")
    inner_proximal: bool = option(
        True, "take the k inner steps on the proximal objective (off: k plain steps on the "
        "support loss, then one step on the proximal term alone, as the authors' code does)")
    test_proximal: bool = option(
        False, "adapt at test time with the proximal term (off: plain steps on the support "
        "loss, as the authors evaluate); the Newton solver always keeps it, since its steps "
        "need the curvature λ adds")
    inner_solver: str = option(
        "newton", "inner solver, in training and at test time: 'newton' (k Newton–CG steps "
        "with a line search, the paper's Hessian-free variant; α is unused) or 'gd' (k steps "
        "of size α)", absent="gd")
    solver_cg_steps: int = option(5, "CG steps per Newton direction (inner_solver 'newton')")

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_float("lam", self.lam)
        # CG is exact at the dimension; far more steps only spin (and a huge count hangs).
        positive_int("cg_steps", self.cg_steps)
        if self.cg_steps > MAX_CG_STEPS:
            raise ValueError(f"cg_steps must be at most {MAX_CG_STEPS}, got {self.cg_steps}")
        positive_float("cg_damping", self.cg_damping, allow_zero=True)
        positive_float("lam_damping", self.lam_damping, allow_zero=True)
        if self.inner_solver not in ("gd", "newton"):
            raise ValueError(f"inner_solver must be 'gd' or 'newton', got {self.inner_solver!r}")
        positive_int("solver_cg_steps", self.solver_cg_steps)
        if self.solver_cg_steps > MAX_CG_STEPS:
            raise ValueError(f"solver_cg_steps must be at most {MAX_CG_STEPS}, got "
                             f"{self.solver_cg_steps}")
        if self.inner_solver == "newton" and not self.inner_proximal:
            raise ValueError("inner_proximal=False (the authors' plain steps, then one proximal "
                             "step) is a gradient-descent scheme: use it with inner_solver 'gd'")


#: A bound on ``cg_steps``: beyond a few dozen steps, rounding dominates anyway.
MAX_CG_STEPS = 10_000


def test_rule(settings: IMAMLSettings) -> str:
    if settings.inner_solver == "newton":
        return f"test steps: Newton–CG on the proximal problem, λ {settings.lam:g}"
    return sgd_rule(settings) + (f", proximal λ {settings.lam:g}" if settings.test_proximal
                                 else "")


def make(settings: IMAMLSettings) -> Method:
    """iMAML with ``settings``: the three pieces of implicit differentiation."""
    from metazoo.core import adapt, adapt_path, iterates_at, proximal, sgd, tree_axpy, tree_detach
    from metazoo.core.autodiff import grad, hessian_vector_product
    from metazoo.core.linalg import conjugate_gradient
    from metazoo.core.newton import newton

    optimizer = sgd(settings.inner_lr)

    def meta_gradient(loss, params, state, task):
        theta = tree_detach(params)
        # 1. Inner solver: k steps on the proximally regularised support loss (gradient steps
        # or Newton–CG steps), or (the authors' scheme) k plain steps, then one step on the
        # proximal term alone: φ ← φ − αλ(φ − θ).
        if settings.inner_solver == "newton":
            adapted = newton(loss, theta, task.support_x, task.support_y, settings.inner_steps,
                             settings.lam, cg_steps=settings.solver_cg_steps).params
        else:
            inner = proximal(loss, theta, settings.lam if settings.inner_proximal else 0.0)
            adapted = adapt(inner, theta, task.support_x, task.support_y,
                            settings.inner_steps, optimizer).params
        if not settings.inner_proximal:
            pull = settings.inner_lr * settings.lam
            adapted = {name: phi - pull * (phi - theta[name]) for name, phi in adapted.items()}

        # 2. Optimality condition ∇L_support(φ) + λ(φ − θ) = 0; its Jacobian in φ is H + λI.
        # H is symmetric, so H v is the vector-Jacobian product of the gradient map; one
        # linearisation at φ serves every CG step (reverse-over-reverse).
        hessian = hessian_vector_product(loss, adapted, task.support_x, task.support_y)

        def operator(vector):
            # ((1 + δ) I + H/(λ + λ_d)) v
            hessian_vector = hessian(vector)
            return tree_axpy(
                1.0 / (settings.lam + settings.lam_damping), hessian_vector,
                {name: (1.0 + settings.cg_damping) * v for name, v in vector.items()},
            )

        # 3. Linear solver.
        def query_loss(phi):
            value = loss(phi, task.query_x, task.query_y)
            return value, value.detach()

        query_grad, value = grad(query_loss, has_aux=True)(adapted)
        meta_grad, residual = conjugate_gradient(operator, query_grad, settings.cg_steps)
        return meta_grad, {"loss": value, "cg_residual": residual.detach()}, state

    def test_adapt(loss, params, state, x, y, steps):
        """Test-time adaptation: plain steps on the support loss by default, or iMAML's own
        inner objective with the proximal term at θ (``test_proximal``); with the Newton
        solver, its Newton–CG steps on that objective (a step count is then a count of
        Newton steps)."""
        if settings.inner_solver == "newton":
            return iterates_at(lambda most, kept: newton(
                loss, params, x, y, most, settings.lam, cg_steps=settings.solver_cg_steps,
                keep=kept), steps)
        anchor = {name: p.detach() for name, p in params.items()}
        objective = proximal(loss, anchor, settings.lam if settings.test_proximal else 0.0)
        return adapt_path(objective, params, x, y, steps, optimizer)

    return Method("imaml", settings, plain_init, meta_gradient, test_adapt, model_itself)


def variants(settings: IMAMLSettings) -> dict[str, IMAMLSettings]:
    """λ = 1/(kα), where (I + kαH)⁻¹ ≈ (I − αH)^k matches MAML's k steps to first order, and
    the λ trained with, each at 1, 10 and the trained number of CG steps."""
    matched = 1.0 / (max(settings.inner_steps, 1) * settings.inner_lr)
    found = {}
    for label, lam in (("1/(kα)", matched), (f"{settings.lam:g}", settings.lam)):
        for cg in sorted({1, settings.cg_steps, 10}):
            found[f"imaml λ={label} cg={cg}"] = dataclasses.replace(settings, lam=lam, cg_steps=cg)
    return found


def analysis(settings: IMAMLSettings) -> Analysis:
    return Analysis(test_rule=test_rule(settings), approximates="maml", rivals=("reptile",),
                    variants=variants(settings))


# The options worth searching (``metazoo tune``), each range with its reason.
_GD = When({"inner_solver": ("gd",)})
SPACE = replace_entries(
    shared_without("inner_lr"),
    Choice("inner_solver", ("newton", "gd"),
           why="the paper's two inner solvers: Hessian-free Newton–CG and gradient descent"),
    Int("inner_steps", 1, 20, log=True,
        why="3 Newton steps (the default), 16 gradient steps (the authors' Omniglot code), 20 "
            "(measured with 'gd' on sinusoid, results/imaml-sinusoid.md)"),
    Float("inner_lr", 1e-3, 1.0, log=True, when=_GD,
          why="0.005 (measured on sinusoid) to 0.1 (the authors' Omniglot code); Newton takes none"),
    Float("lam", 0.5, 200.0, log=True,
          why="2 (the authors' Omniglot code) to 160 (the sinusoid screen, 5 to 160, best at 40)"),
    Int("cg_steps", 1, 20, why="5, the paper's, at the centre; CG is exact at the dimension"),
    Int("solver_cg_steps", 1, 10, when=When({"inner_solver": ("newton",)}),
        why="5 CG steps per Newton direction (the paper, Table 2) at the centre"),
    Float("cg_damping", 0.0, 2.0, why="0 (the textbook operator) to 1 (the authors' code) and beyond"),
    Float("lam_damping", 0.0, 20.0,
          why="0 (the textbook operator) to 10 (the authors' code) and beyond"),
    Choice("inner_proximal", (True, False), when=_GD, otherwise=True,
           why="the proximal objective (the paper) or plain steps then one proximal step (the "
               "authors' code); Newton needs the former"),
    Choice("test_proximal", (False, True), when=_GD,
           why="the authors evaluate without the proximal term; Newton always keeps it"),
)


register(Algorithm("imaml", "implicit MAML: CG solve of (I + H/λ) g = ∇L_query(φ)",
                   IMAMLSettings, make, analysis, space=SPACE))
