"""Per-task measurements of inner-loop paths and of meta-gradient fidelity.

All functions take one task (no leading axis) and are pure, so they vmap over tasks.
"""

from __future__ import annotations

import torch
from torch.func import grad, vjp

from metazoo.algorithms.base import Algorithm, InnerLoop
from metazoo.core import adapt, tree_dot, tree_norm
from metazoo.core.tree import Params
from metazoo.models import LossFn
from metazoo.tasks import TaskBatch


def _flatten(tree: Params, leading: int | None = None) -> torch.Tensor:
    if leading is None:
        return torch.cat([leaf.reshape(-1) for leaf in tree.values()])
    return torch.cat([leaf.reshape(leading, -1) for leaf in tree.values()], dim=1)


def _unflatten(vector: torch.Tensor, like: Params) -> Params:
    out, start = {}, 0
    for name, leaf in like.items():
        out[name] = vector[start:start + leaf.numel()].view_as(leaf)
        start += leaf.numel()
    return out


def hessian_vector(loss: LossFn, params: Params, x, y, vector: Params) -> Params:
    """H v for the Hessian of ``loss(·, x, y)`` at ``params`` (H is symmetric, so this is
    the vector-Jacobian product of the gradient map: reverse over reverse)."""
    _, pullback = vjp(lambda p: grad(loss)(p, x, y), params)
    return pullback(vector)[0]


def top_eigenvalue(loss: LossFn, params: Params, x, y, iterations: int = 20) -> torch.Tensor:
    """Largest-magnitude Hessian eigenvalue by power iteration (Rayleigh quotient of the last
    iterate), started from the gradient, or from all ones where the gradient vanishes."""
    start = grad(loss)(params, x, y)
    flat = _flatten(start)
    flat = torch.where(flat.norm() > 0, flat, torch.ones_like(flat))
    vector = _unflatten(flat / flat.norm(), params)
    for _ in range(iterations):
        product = hessian_vector(loss, params, x, y, vector)
        vector = {n: v / tree_norm(product).clamp_min(1e-30) for n, v in product.items()}
    return tree_dot(vector, hessian_vector(loss, params, x, y, vector)) / tree_dot(vector, vector)


def path_metrics(
    loss: LossFn,
    params: Params,
    task: TaskBatch,
    steps: int,
    lr: float | Params,
    *,
    regularization: float = 0.0,
    power_iterations: int = 20,
) -> dict[str, torch.Tensor]:
    """Geometry of the inner path from θ on the task's support set.

    Returns scalars:
        ``consecutive_cosine``: mean cosine between successive inner gradients (1: the steps
        reinforce each other, < 0: they zig-zag; NaN for fewer than 2 steps);
        ``path_length``: Σ_i ‖φ_{i+1} − φ_i‖; ``displacement``: ‖φ_k − θ‖;
        ``straightness``: displacement / path length (1 for a straight path);
        ``first_grad_norm``, ``last_grad_norm``: ‖∇L‖ at φ_0 and φ_{k−1};
        ``path_curvature``: mean over steps of gᵀH(φ_i)g / ‖g‖², the curvature along the
        direction of each step; ``top_eigenvalue``: of the support-loss Hessian at θ.
    """
    run = adapt(loss, params, task.support_x, task.support_y, steps, lr,
                regularization=regularization, record=True)
    gradients = _flatten(run.gradients, steps)  # [k, P]
    if isinstance(lr, dict):
        rates = _flatten({n: torch.as_tensor(lr[n], dtype=p.dtype).expand_as(p)
                          for n, p in params.items()})
    else:
        rates = torch.full_like(gradients[0] if steps else _flatten(params), lr)
    updates = gradients * rates  # [k, P]: φ_{i+1} = φ_i − updates[i]
    theta = _flatten(params)
    path_length = updates.norm(dim=1).sum()
    displacement = (_flatten(run.params) - theta).norm()
    if steps >= 2:
        cosine = torch.nn.functional.cosine_similarity(gradients[:-1], gradients[1:], dim=1).mean()
    else:
        cosine = torch.full((), float("nan"), dtype=theta.dtype)
    curvatures = []
    iterate = theta
    for index in range(steps):
        direction = _unflatten(gradients[index], params)
        product = hessian_vector(loss, _unflatten(iterate, params), task.support_x,
                                 task.support_y, direction)
        curvatures.append(tree_dot(direction, product) / tree_dot(direction, direction).clamp_min(1e-30))
        iterate = iterate - updates[index]
    nan = torch.full((), float("nan"), dtype=theta.dtype)
    return {
        "consecutive_cosine": cosine,
        "path_length": path_length,
        "displacement": displacement,
        "straightness": displacement / path_length if steps else nan,
        "first_grad_norm": run.grad_norms[0] if steps else nan,
        "last_grad_norm": run.grad_norms[-1] if steps else nan,
        "path_curvature": torch.stack(curvatures).mean() if steps else nan,
        "top_eigenvalue": top_eigenvalue(loss, params, task.support_x, task.support_y,
                                         power_iterations),
    }


def fidelity(
    loss: LossFn,
    params: Params,
    task: TaskBatch,
    algorithm: Algorithm,
    settings: InnerLoop,
    reference: Algorithm,
    reference_settings: InnerLoop,
) -> dict[str, torch.Tensor]:
    """Cosine and norm ratio of ``algorithm``'s meta-gradient to ``reference``'s (exact MAML)
    at the same θ and task. Reptile's direction θ − φ is divided by k·α first, which makes
    it an estimate of the gradient (with k = 1 it is the gradient at θ)."""
    estimate, _ = algorithm.meta_gradient(loss, params, task, settings)
    exact, _ = reference.meta_gradient(loss, params, task, reference_settings)
    if algorithm.name == "reptile" and settings.inner_steps:
        estimate = {n: g / (settings.inner_steps * settings.inner_lr) for n, g in estimate.items()}
    estimate = {n: estimate[n] for n in exact}  # θ's part only (Meta-SGD adds step sizes)
    norm_estimate, norm_exact = tree_norm(estimate), tree_norm(exact)
    return {
        "cosine": tree_dot(estimate, exact) / (norm_estimate * norm_exact).clamp_min(1e-30),
        "norm_ratio": norm_estimate / norm_exact.clamp_min(1e-30),
    }


def matched_start(
    loss: LossFn,
    params: Params,
    tasks: TaskBatch,
    target: float,
    steps: int,
    lr: float | Params,
    *,
    regularization: float = 0.0,
    seed: int = 0,
    iterations: int = 30,
) -> dict:
    """Start θ from a given mean loss by perturbing it, then measure the adaptation gain.

    The control for "low loss or easy to optimise": θ + s·d, with d a fixed random direction
    scaled tensor by tensor to the norm of θ's tensor (filter-wise normalisation as in loss
    landscape plots), and s ≥ 0 found by bisection so that the mean query loss over ``tasks``
    before adaptation equals ``target`` (a θ already at or above it keeps s = 0). Different
    θ's compared at the same ``target`` start equally well by construction, so their gains
    differ only by how easily they are optimised from there.

    Returns:
        ``{"scale": s, "pre": [T], "post": [T]}``: per-task query loss before and after
        ``steps`` test-time steps from the perturbed θ (with ``lr``, ``regularization`` as at
        test time).
    """
    generator = torch.Generator().manual_seed(seed)
    direction = {}
    for name, leaf in params.items():
        noise = torch.randn(leaf.shape, generator=generator, dtype=leaf.dtype).to(leaf.device)
        scale = leaf.norm() / noise.norm().clamp_min(1e-30)
        direction[name] = noise * torch.where(leaf.norm() > 0, scale, torch.ones_like(scale))

    def moved(s: float) -> Params:
        return {n: params[n].detach() + s * direction[n] for n in params}

    def query_losses(theta: Params) -> torch.Tensor:
        return torch.vmap(lambda task: loss(theta, task.query_x, task.query_y))(tasks)

    def mean_loss(s: float) -> float:
        return query_losses(moved(s)).double().mean().item()

    low, high = 0.0, 0.0
    if mean_loss(0.0) < target:
        high = 1e-3
        while mean_loss(high) < target and high < 1e6:  # bracket the crossing
            low, high = high, 2 * high
        for _ in range(iterations):
            middle = 0.5 * (low + high)
            low, high = (middle, high) if mean_loss(middle) < target else (low, middle)
    theta = moved(high)
    pre = query_losses(theta)

    def after(task: TaskBatch) -> torch.Tensor:
        adapted = adapt(loss, theta, task.support_x, task.support_y, steps, lr,
                        anchor=theta, regularization=regularization).params
        return loss(adapted, task.query_x, task.query_y)

    return {"scale": high, "pre": pre.detach(), "post": torch.vmap(after)(tasks).detach()}
