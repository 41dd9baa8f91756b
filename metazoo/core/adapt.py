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
    ``record=True``. ``iterates`` holds φ after each step count of ``keep`` (``None``
    unless ``keep`` is given). ``moment`` holds Adam's second moment after the last step
    (``None`` with plain SGD), so that a later call can carry on from it (``rms_init``).
    """

    params: Params
    losses: torch.Tensor
    grad_norms: torch.Tensor | None = None
    gradients: Params | None = None
    iterates: list[Params] | None = None
    moment: Params | None = None


def proximal(loss: LossFn, anchor: Params | None, regularization: float) -> LossFn:
    """``loss(φ, x, y) + regularization/2 · ‖φ − anchor‖²`` (just ``loss`` when it is 0): the
    inner objective of both inner solvers."""
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
    lr: float | Params,
    *,
    differentiable: bool = False,
    anchor: Params | None = None,
    regularization: float = 0.0,
    record: bool = False,
    batch_size: int = 0,
    rms_decay: float = 0.0,
    rms_eps: float = 1e-8,
    rms_init: Params | None = None,
    rms_count: float | torch.Tensor = 0,
    keep: tuple[int, ...] | list[int] | None = None,
) -> Adapted:
    """Run ``steps`` gradient steps from ``params`` on ``loss(·, x, y)``.

    The objective is ``loss(φ, x, y) + regularization/2 · ‖φ − anchor‖²`` (the proximal
    term is iMAML's inner problem; it is skipped when ``regularization`` is 0).

    A step is plain SGD, φ ← φ − α g, unless ``rms_decay`` β₂ > 0: then it is Adam with β₁ = 0
    (Reptile's inner optimizer), φ ← φ − α g / (√v̂ + ε), with v ← β₂ v + (1 − β₂) g² and
    v̂ = v / (1 − β₂ᵗ) its bias-corrected value. v starts at 0 and t at 1 for this call, unless
    ``rms_init`` and ``rms_count`` carry on from an earlier one: then ``adapt`` for k steps,
    then for m more from the returned ``moment`` with ``rms_count=k``, is Adam for k + m
    steps with one state (the reference Reptile's Adam, whose state outlives each task).

    With ``batch_size`` b > 0 each step uses the next b examples, cycling through ``x`` in its
    order (so ``n/b`` steps are one pass); the sampler's order is the shuffle.

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
        batch_size: examples per step (0: all of them at every step).
        rms_decay: β₂ of Adam with β₁ = 0 (0: plain SGD).
        rms_eps: ε of that Adam.
        rms_init: that Adam's second moment to start from (default: zeros), keyed like
            ``params``.
        rms_count: steps that Adam has already taken (for its bias correction).
        keep: also return φ after each of these step counts (each ≤ ``steps``).

    Returns:
        :class:`Adapted` with φ and, when recorded, the path statistics.
    """
    if steps < 0:
        raise ValueError(f"inner steps must be >= 0, got {steps}")
    if regularization < 0:
        raise ValueError(f"regularization must be >= 0, got {regularization}")
    if x.shape[0] < 1:
        raise ValueError("the task has no examples to adapt on: give at least one support example")
    if regularization and anchor is None:
        anchor = {name: p.detach() for name, p in params.items()}

    objective = proximal(loss, anchor, regularization)
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
    step = grad_and_value(objective)
    losses, grad_norms, gradients, iterates = [], [], [], []
    adapted = params
    second = None if rms_init is None else dict(rms_init)  # Adam's second moment
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
        if rms_decay:
            if second is None:
                second = {name: torch.zeros_like(g) for name, g in gradient.items()}
            second = {name: rms_decay * v + (1 - rms_decay) * gradient[name] ** 2
                      for name, v in second.items()}
            correction = 1 - rms_decay ** (rms_count + index + 1)
            gradient = {name: g / ((second[name] / correction).sqrt() + rms_eps)
                        for name, g in gradient.items()}
        if isinstance(lr, dict):
            adapted = {name: p - lr[name] * gradient[name] for name, p in adapted.items()}
        else:
            adapted = {name: p - lr * gradient[name] for name, p in adapted.items()}
        if keep and index + 1 in keep:
            iterates.append(adapted)
    empty = torch.zeros(0, device=x.device)
    stacked = torch.stack(losses) if losses else empty
    kept = iterates if keep is not None else None
    if not record:
        return Adapted(adapted, stacked, iterates=kept, moment=second)
    return Adapted(
        adapted,
        stacked,
        torch.stack(grad_norms) if grad_norms else empty,
        {name: torch.stack([g[name] for g in gradients]) if gradients
         else p.new_zeros((0, *p.shape)) for name, p in params.items()},
        kept,
        second,
    )
