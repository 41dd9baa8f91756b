"""Newton–CG on the proximal inner problem: iMAML's Hessian-free inner solver.

Each step solves ``(H + λI) d = −∇G(φ)`` for the objective
``G(φ) = L(φ) + λ/2 ‖φ − anchor‖²`` by a few conjugate-gradient steps with Hessian-vector
products, within ``‖d‖ ≤ ‖∇G‖/λ`` (the Newton step's length wherever the loss is convex;
Steihaug's truncation at negative curvature), then picks the step length by a backtracking
(Armijo) line search, as the iMAML paper's Hessian-free variant does ("5 CG steps to compute
the search direction and performs line-search to pick step size", Rajeswaran et al. 2019,
Table 2). A Newton step scales with the inverse curvature, so it does not overshoot as the
curvature grows, as a gradient step of fixed size α does once αh > 2. Written for ``vmap``:
a fixed number of steps and candidate lengths, with the stops as masks; when tasks run one
by one (no transform active) the stops are taken early, with the same result.
"""

from __future__ import annotations

import torch

from metazoo.core.adapt import Adapted, proximal
from metazoo.core.autodiff import grad_and_value, hessian_vector_product, inside_transform
from metazoo.core.linalg import steihaug_conjugate_gradient
from metazoo.core.tree import tree_axpy, tree_dot, tree_norm
from metazoo.types import LossFn, Params

#: Step lengths the line search tries, longest first (1 is the full Newton step).
LENGTHS = tuple(0.5 ** i for i in range(8))
#: Armijo's sufficient-decrease constant (Nocedal & Wright's usual 10⁻⁴).
ARMIJO = 1e-4


def newton(
    loss: LossFn,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    regularization: float,
    *,
    anchor: Params | None = None,
    cg_steps: int = 5,
    keep: tuple[int, ...] | list[int] | None = None,
) -> Adapted:
    """Run ``steps`` Newton–CG steps from ``params`` on ``loss(·, x, y) + λ/2 ‖φ − anchor‖²``.

    Args:
        loss: pure loss ``(params, x, y) -> scalar``.
        params: starting point θ (not modified; the result is not differentiated).
        x, y: the data of one task (no task axis; vmap adds it).
        steps: number of Newton steps ``≥ 0``.
        regularization: proximal strength λ > 0; it also makes ``H + λI`` positive definite
            wherever the loss's own curvature is above −λ.
        anchor: centre of the proximal term (defaults to ``params``, detached).
        cg_steps: conjugate-gradient steps per Newton direction.
        keep: also return φ after each of these step counts (each ≤ ``steps``).

    Returns:
        :class:`~metazoo.core.adapt.Adapted` with φ, the objective at the start of each step
        (``losses``) and the kept iterates.
    """
    if steps < 0:
        raise ValueError(f"Newton steps must be >= 0, got {steps}")
    if not regularization > 0:
        raise ValueError(f"the Newton solver needs a proximal strength > 0, got {regularization}")
    if x.shape[0] < 1:
        raise ValueError("the task has no examples to adapt on: give at least one support example")
    params = {name: p.detach() for name, p in params.items()}
    anchor = params if anchor is None else {name: a.detach() for name, a in anchor.items()}

    objective = proximal(loss, anchor, regularization)
    sequential = not inside_transform()  # tasks one by one: stops may be taken early
    keep = sorted(set(keep)) if keep is not None else None
    iterates = [params] if keep and keep[0] == 0 else []
    losses = []
    current = params
    for index in range(steps):
        gradient, value = grad_and_value(objective)(current, x, y)
        gradient = {name: g.detach() for name, g in gradient.items()}
        value = value.detach()
        losses.append(value)
        hessian = hessian_vector_product(objective, current, x, y)

        def curvature(vector: Params, hessian=hessian) -> Params:  # (H + λI) v, not differentiated
            return {name: t.detach() for name, t in hessian(vector).items()}

        descent = {name: -g for name, g in gradient.items()}
        # Where the loss is convex, the Newton step of G is no longer than ‖∇G‖/λ; that bound
        # is the trust region, so directions of near-zero or negative curvature of H + λI
        # cannot fling φ away.
        direction = steihaug_conjugate_gradient(
            curvature, descent, cg_steps, radius=tree_norm(gradient) / regularization)
        slope = tree_dot(gradient, direction)  # < 0 for a descent direction
        # Armijo backtracking: the longest listed length with sufficient decrease (none: stay).
        # Under vmap every length is tried, so that no branch depends on the data; tasks run
        # one by one (no transform active) stop at the first accepted, with the same result.
        chosen = torch.zeros_like(value)
        for length in LENGTHS:  # longest first
            trial = objective(tree_axpy(length, direction, current), x, y).detach()
            accepted = (trial <= value + ARMIJO * length * slope) & torch.isfinite(trial)
            chosen = torch.where(accepted & (chosen == 0), torch.full_like(chosen, length), chosen)
            if sequential and bool(accepted):
                break
        current = tree_axpy(chosen, direction, current)
        if keep and index + 1 in keep:
            iterates.append(current)
    stacked = torch.stack(losses) if losses else torch.zeros(0, device=x.device)
    return Adapted(current, stacked, iterates=iterates if keep is not None else None)
