"""Conjugate gradient on parameter dicts, written for ``vmap``: a fixed number of steps
and no data-dependent branches."""

from __future__ import annotations

from collections.abc import Callable

import torch

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
