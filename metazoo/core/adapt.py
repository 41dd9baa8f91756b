"""The one inner loop: ``k`` steps of gradient descent as pure tensor code.

Every algorithm, evaluation and analysis adapts through :func:`adapt`, so "k steps on the
support set" means the same computation everywhere.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from metazoo.core.autodiff import grad_and_value
from metazoo.core.tree import tree_norm
from metazoo.types import LossFn, Params


class Adapted(NamedTuple):
    """Result of :func:`adapt`.

    ``losses`` (shape ``[steps]``, detached) holds, for each step, the inner objective at the
    iterate the step started from: a by-product of the steps, always returned.
    ``grad_norms`` (``[steps]``) holds the norms of those steps' gradients and ``gradients``
    the gradients themselves (each leaf ``[steps, *shape]``); both are ``None`` unless
    ``record=True``.
    """

    params: Params
    losses: torch.Tensor
    grad_norms: torch.Tensor | None = None
    gradients: Params | None = None


def adapt(
    loss: LossFn,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    lr: float | Params,
    *,
    differentiable: bool = False,
    anchor: Params | None = None,
    regularization: float = 0.0,
    record: bool = False,
) -> Adapted:
    """Run ``steps`` SGD steps from ``params`` on ``loss(·, x, y)``.

    The objective is ``loss(φ, x, y) + regularization/2 · ‖φ − anchor‖²`` (the proximal
    term is iMAML's inner problem; it is skipped when ``regularization`` is 0).

    Args:
        loss: pure loss ``(params, x, y) -> scalar``.
        params: starting point θ (not modified).
        x, y: the data of one task (no task axis; vmap adds it).
        steps: number of steps ``k ≥ 0``.
        lr: step size α, a float or a dict of per-parameter tensors (Meta-SGD style).
        differentiable: keep the inner gradients in the graph so that a derivative of the
            result with respect to ``params`` is the exact (second-order) one. When False
            the gradients are detached: φ still depends on θ through the identity path,
            which is what first-order MAML differentiates.
        anchor: centre of the proximal term (defaults to ``params``, detached).
        regularization: proximal strength λ ≥ 0.
        record: also return each step's gradient and its norm.

    Returns:
        :class:`Adapted` with φ and, when recorded, the path statistics.
    """
    if steps < 0:
        raise ValueError(f"inner steps must be >= 0, got {steps}")
    if regularization < 0:
        raise ValueError(f"regularization must be >= 0, got {regularization}")
    if regularization and anchor is None:
        anchor = {name: p.detach() for name, p in params.items()}

    def objective(current: Params) -> torch.Tensor:
        value = loss(current, x, y)
        if regularization:
            value = value + 0.5 * regularization * sum(
                ((p - anchor[name]) ** 2).sum() for name, p in current.items()
            )
        return value

    step = grad_and_value(objective)
    losses, grad_norms, gradients = [], [], []
    adapted = params
    for _ in range(steps):
        gradient, value = step(adapted)
        if not differentiable:
            gradient = {name: g.detach() for name, g in gradient.items()}
        losses.append(value.detach())
        if record:
            grad_norms.append(tree_norm(gradient).detach())
            gradients.append({name: g.detach() for name, g in gradient.items()})
        if isinstance(lr, dict):
            adapted = {name: p - lr[name] * gradient[name] for name, p in adapted.items()}
        else:
            adapted = {name: p - lr * gradient[name] for name, p in adapted.items()}
    empty = torch.zeros(0, device=x.device)
    stacked = torch.stack(losses) if losses else empty
    if not record:
        return Adapted(adapted, stacked)
    return Adapted(
        adapted,
        stacked,
        torch.stack(grad_norms) if grad_norms else empty,
        {name: torch.stack([g[name] for g in gradients]) if gradients
         else p.new_zeros((0, *p.shape)) for name, p in params.items()},
    )
