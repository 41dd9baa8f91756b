"""The one inner loop: ``k`` steps of gradient descent as pure tensor code.

Every algorithm, evaluation and analysis adapts through :func:`adapt`, so "k steps on the
support set" means the same computation everywhere.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

from metazoo.core.autodiff import grad_and_value
from metazoo.core.optimizers import InnerOptimizer, OptState
from metazoo.core.tree import tree_norm
from metazoo.types import LossFn, Params


class Adapted(NamedTuple):
    """Result of :func:`adapt`.

    ``losses`` (shape ``[steps]``, detached) holds, for each step, the inner objective at the
    iterate the step started from: a by-product of the steps, always returned.
    ``grad_norms`` (``[steps]``) holds the norms of those steps' gradients and ``gradients``
    the gradients themselves (each leaf ``[steps, *shape]``); both are ``None`` unless
    ``record=True``. ``iterates`` holds φ after each step count of ``keep`` (``None``
    unless ``keep`` is given). ``state`` is the inner optimizer's state after the last step,
    so that a later call can carry on from it.
    """

    params: Params
    losses: torch.Tensor
    grad_norms: torch.Tensor | None = None
    gradients: Params | None = None
    iterates: list[Params] | None = None
    state: OptState = ()


def proximal(loss: LossFn, anchor: Params, regularization: float) -> LossFn:
    """``loss(φ, x, y) + regularization/2 · ‖φ − anchor‖²`` (just ``loss`` when it is 0): the
    proximal objective of iMAML's inner problem, for either inner solver."""
    if regularization < 0:
        raise ValueError(f"regularization must be >= 0, got {regularization}")
    if not regularization:
        return loss

    def objective(current: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss(current, x, y) + 0.5 * regularization * sum(
            ((p - anchor[name]) ** 2).sum() for name, p in current.items())

    return objective


def adapt(
    loss: LossFn,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    optimizer: InnerOptimizer,
    *,
    state: OptState | None = None,
    differentiable: bool = False,
    batch_size: int = 0,
    record: bool = False,
    keep: Sequence[int] | None = None,
) -> Adapted:
    """Run ``steps`` steps of ``optimizer`` from ``params`` on ``loss(·, x, y)``.

    A proximal term is a loss wrapper (:func:`proximal`); the step rule is the optimizer's
    (:mod:`metazoo.core.optimizers`: SGD, per-parameter SGD, Adam with β₁ = 0).

    With ``batch_size`` b > 0 each step uses the next b examples, cycling through ``x`` in its
    order (so ``n/b`` steps are one pass); the sampler's order is the shuffle.

    Args:
        loss: pure loss ``(params, x, y) -> scalar``.
        params: starting point θ (not modified).
        x, y: the data of one task (no task axis; vmap adds it).
        steps: number of steps ``k ≥ 0``.
        optimizer: the inner optimizer, an (init, update) pair.
        state: the optimizer's state to start from (default: ``optimizer.init(params)``).
        differentiable: keep the inner gradients in the graph so that a derivative of the
            result with respect to ``params`` is the exact (second-order) one. When False
            the gradients are detached: φ still depends on θ through the identity path,
            which is what first-order MAML differentiates.
        batch_size: examples per step (0: all of them at every step).
        record: also return each step's gradient and its norm.
        keep: also return φ after each of these step counts (each ≤ ``steps``).

    Returns:
        :class:`Adapted` with φ, the optimizer's final state and, when recorded, the path.
    """
    if steps < 0:
        raise ValueError(f"inner steps must be >= 0, got {steps}")
    if x.shape[0] < 1:
        raise ValueError("the task has no examples to adapt on: give at least one support example")

    count = x.shape[0]
    if batch_size and batch_size < count:
        def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
            index = (torch.arange(batch_size) + step * batch_size) % count
            index = index.to(x.device)
            return x.index_select(0, index), y.index_select(0, index)
    else:
        def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
            return x, y

    keep = sorted(set(keep)) if keep is not None else None
    step = grad_and_value(loss)
    losses, grad_norms, gradients, iterates = [], [], [], []
    adapted = params
    state = optimizer.init(params) if state is None else state
    if keep and keep[0] == 0:
        iterates.append(adapted)
    for index in range(steps):
        gradient, value = step(adapted, *batch(index))
        if not differentiable:
            gradient = {name: g.detach() for name, g in gradient.items()}
        losses.append(value.detach())
        if record:
            grad_norms.append(tree_norm(gradient).detach())
            gradients.append({name: g.detach() for name, g in gradient.items()})
        updates, state = optimizer.update(gradient, state)
        adapted = {name: p + updates[name] for name, p in adapted.items()}
        if keep and index + 1 in keep:
            iterates.append(adapted)
    empty = torch.zeros(0, device=x.device)
    stacked = torch.stack(losses) if losses else empty
    kept = iterates if keep is not None else None
    if not record:
        return Adapted(adapted, stacked, iterates=kept, state=state)
    return Adapted(
        adapted,
        stacked,
        torch.stack(grad_norms) if grad_norms else empty,
        {name: torch.stack([g[name] for g in gradients]) if gradients
         else p.new_zeros((0, *p.shape)) for name, p in params.items()},
        kept,
        state,
    )


def iterates_at(solve: Callable[[int, list[int]], Adapted], steps: Sequence[int]
                ) -> list[Params]:
    """The iterates after each of the step counts ``steps`` of one trajectory: ``solve(most,
    kept)`` runs ``most`` steps and returns an :class:`Adapted` holding φ after each count in
    ``kept`` (:func:`adapt` and :func:`~metazoo.core.newton.newton` both do)."""
    steps = list(steps)
    if any(b < a for a, b in itertools.pairwise(steps)) or (steps and steps[0] < 0):
        raise ValueError(f"test steps must be increasing integers >= 0, got {steps}")
    if not steps:
        return []
    kept = sorted(set(steps))
    iterates = solve(max(steps), kept).iterates
    return [iterates[kept.index(count)] for count in steps]


def adapt_path(loss: LossFn, params: Params, x: torch.Tensor, y: torch.Tensor,
               steps: Sequence[int], optimizer: InnerOptimizer, **options: Any) -> list[Params]:
    """The iterates of :func:`adapt` after each of the increasing step counts ``steps`` (0 =
    ``params``), along one trajectory; ``options`` go to ``adapt`` (state, batch size)."""
    return iterates_at(lambda most, kept: adapt(loss, params, x, y, most, optimizer, keep=kept,
                                                **options), steps)
