"""Inner optimizers: pure (init, update) pairs, in the manner of optax.

``state = optimizer.init(params)`` and ``updates, state = optimizer.update(gradient, state)``;
the inner loop adds the updates, φ ← φ + u. The state is returned, never hidden in the
parameters, so a method that keeps it between tasks (Reptile's Adam) simply passes it on.
Every update is pure tensor code: under ``differentiable=True`` the inner loop differentiates
through it (Meta-SGD's learned step sizes are tensors in the graph).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from metazoo.types import Params

#: An optimizer's state: a pytree of tensors (and plain numbers), ``()`` when it has none.
OptState = Any


class InnerOptimizer(NamedTuple):
    """``init(params) -> state`` and ``update(gradient, state) -> (updates, state)``."""

    init: Callable[[Params], OptState]
    update: Callable[[Params, OptState], tuple[Params, OptState]]


def sgd(lr: float | Params) -> InnerOptimizer:
    """Plain gradient descent, u = −α g, with one step size or one per parameter (a dict
    keyed like the parameters, of numbers or tensors: Meta-SGD's learned step sizes, ANIL's
    zero for the body)."""

    def init(params: Params) -> OptState:
        return ()

    if isinstance(lr, dict):
        def update(gradient: Params, state: OptState) -> tuple[Params, OptState]:
            return {name: -lr[name] * g for name, g in gradient.items()}, state
    else:
        def update(gradient: Params, state: OptState) -> tuple[Params, OptState]:
            return {name: -lr * g for name, g in gradient.items()}, state

    return InnerOptimizer(init, update)


class RMSState(NamedTuple):
    """Adam's state with β₁ = 0: the second moment v, keyed like the parameters, and the
    number of steps taken (a plain int from :func:`rms`'s ``init``; a tensor when carried)."""

    second: Params
    count: int | torch.Tensor


def rms(lr: float, beta2: float, eps: float = 1e-8) -> InnerOptimizer:
    """Adam with β₁ = 0 (Reptile's inner optimizer, openai/supervised-reptile):
    v ← β₂ v + (1 − β₂) g², u = −α g / (√(v / (1 − β₂ᵗ)) + ε).

    Continuing from the state a first run returned is Adam with one state for both runs (the
    reference keeps it across tasks).
    """

    def init(params: Params) -> RMSState:
        return RMSState({name: torch.zeros_like(p) for name, p in params.items()}, 0)

    def update(gradient: Params, state: RMSState) -> tuple[Params, RMSState]:
        second = {name: beta2 * v + (1 - beta2) * gradient[name] ** 2
                  for name, v in state.second.items()}
        count = state.count + 1
        correction = 1 - beta2 ** count
        updates = {name: -lr * (g / ((second[name] / correction).sqrt() + eps))
                   for name, g in gradient.items()}
        return updates, RMSState(second, count)

    return InnerOptimizer(init, update)
