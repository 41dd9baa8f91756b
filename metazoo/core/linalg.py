"""Conjugate gradient on parameter dicts, written for ``vmap``: a fixed number of steps
and no data-dependent branches."""

from __future__ import annotations

from collections.abc import Callable

import torch

from metazoo.core.autodiff import inside_transform
from metazoo.core.tree import Params, tree_axpy, tree_dot, tree_map

# Guards 0/0 once the residual is exactly zero (converged, or a zero right-hand side):
# the step sizes then become 0 instead of NaN.
_TINY = 1e-30


def conjugate_gradient(
    matvec: Callable[[Params], Params], rhs: Params, steps: int
) -> tuple[Params, torch.Tensor]:
    """Approximately solve ``A x = rhs`` for symmetric positive-definite ``A``.

    Starts from ``x = 0`` and runs exactly ``steps`` iterations (exact after ``dim``
    iterations in exact arithmetic).

    Returns:
        ``(x, residual_norm)`` with ``residual_norm = ‖rhs − A x‖`` of the last iterate.
    """
    solution = tree_map(torch.zeros_like, rhs)
    residual = rhs
    direction = rhs
    residual_sq = tree_dot(residual, residual)
    for _ in range(steps):
        product = matvec(direction)
        curvature = tree_dot(direction, product)
        # Keep the sign: with an indefinite operator (non-convex inner loss) the curvature
        # can be negative, and clamping it to +tiny would make the step explode.
        curvature = torch.where(curvature.abs() > _TINY, curvature, torch.full_like(curvature, _TINY))
        step = residual_sq / curvature
        solution = tree_axpy(step, direction, solution)
        residual = tree_axpy(-step, product, residual)
        new_residual_sq = tree_dot(residual, residual)
        direction = tree_axpy(new_residual_sq / residual_sq.clamp_min(_TINY), direction, residual)
        residual_sq = new_residual_sq
    return solution, torch.sqrt(residual_sq)


def steihaug_conjugate_gradient(
    matvec: Callable[[Params], Params], rhs: Params, steps: int, radius: torch.Tensor
) -> Params:
    """Approximately minimise the model ``½ xᵀAx − rhsᵀx`` within ``‖x‖ ≤ radius``, ``A``
    symmetric but perhaps indefinite (Steihaug's truncated CG; Nocedal & Wright,
    Algorithm 7.2).

    Conjugate gradient from ``x = 0``; at the first direction ``p`` of non-positive curvature
    ``pᵀAp ≤ 0``, or the first step that would leave the ball, it goes along ``p`` to the
    ball's boundary and stops. Every iterate decreases the model, so ``xᵀ rhs > 0``: ``x``
    points downhill for an objective whose negative gradient is ``rhs``. A fixed number of
    steps with the stop as a mask, so that ``vmap`` batches it; with no transform active (one
    task at a time) it returns as soon as it stops, with the same result.
    """
    solution = tree_map(torch.zeros_like, rhs)
    residual = rhs
    direction = rhs
    residual_sq = tree_dot(residual, residual)
    active = torch.ones_like(residual_sq, dtype=torch.bool)
    for _ in range(steps):
        product = matvec(direction)
        curvature = tree_dot(direction, product)
        step = residual_sq / curvature.clamp_min(_TINY)
        # τ ≥ 0 with ‖x + τp‖ = radius, for a stop on the boundary.
        along, length_sq = tree_dot(solution, direction), tree_dot(direction, direction)
        room = (radius ** 2 - tree_dot(solution, solution)).clamp_min(0.0)
        to_boundary = (torch.sqrt(along ** 2 + length_sq * room) - along) / length_sq.clamp_min(_TINY)
        stop = (curvature <= 0) | (step >= to_boundary)
        step = torch.where(active, torch.where(stop, to_boundary, step), torch.zeros_like(step))
        active = active & ~stop
        solution = tree_axpy(step, direction, solution)
        residual = tree_axpy(-step, product, residual)
        new_residual_sq = tree_dot(residual, residual)
        direction = tree_axpy(new_residual_sq / residual_sq.clamp_min(_TINY), direction, residual)
        residual_sq = new_residual_sq
        if not inside_transform() and not bool(active):
            break  # one task at a time: the remaining steps would all be zero
    return solution
