"""Per-task measurements of inner-loop paths and of meta-gradient fidelity.

All functions take one task (no leading axis) and are pure, so they vmap over tasks.
"""

from __future__ import annotations

import torch
from torch.func import grad

from metazoo.algorithms import Method, State
from metazoo.analysis.methods import as_gradient
from metazoo.core import tree_dot, tree_norm
from metazoo.core.autodiff import hessian_vector_product
from metazoo.types import LossFn, Params, TaskBatch


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
    """H v for the Hessian of ``loss(·, x, y)`` at ``params``."""
    return hessian_vector_product(loss, params, x, y)(vector)


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
    meta: Params,
    task: TaskBatch,
    steps: int,
    method: Method,
    *,
    state: State | None = None,
    power_iterations: int = 20,
) -> dict[str, torch.Tensor]:
    """Geometry of the method's own test-time path from θ on the task's support set.

    The path φ_0 = θ, φ_1, …, φ_k is the method's test-time adaptation (its step sizes, its
    proximal term, its frozen parameters), so every method is measured on the path it takes.

    Returns scalars:
        ``consecutive_cosine``: mean cosine between successive updates φ_{i+1} − φ_i (with a
        scalar step size, the cosine of successive gradients; 1: the steps reinforce each
        other, < 0: they zig-zag; NaN for fewer than 2 steps);
        ``path_length``: Σ_i ‖φ_{i+1} − φ_i‖; ``displacement``: ‖φ_k − θ‖;
        ``straightness``: displacement / path length (1 for a straight path);
        ``first_grad_norm``, ``last_grad_norm``: ‖∇L_support‖ at φ_0 and φ_{k−1};
        ``path_curvature``: mean over steps of uᵀH(φ_i)u / ‖u‖² along each update u;
        ``top_eigenvalue``: of the support-loss Hessian at θ.
    """
    x, y = task.support_x, task.support_y
    iterates = method.adapt(loss, meta, state or {}, x, y, range(steps + 1))  # φ_0 … φ_k
    points = torch.stack([_flatten(phi) for phi in iterates])  # [k+1, P]
    updates = points[1:] - points[:-1]  # [k, P]
    path_length = updates.norm(dim=1).sum()
    displacement = (points[-1] - points[0]).norm()
    nan = torch.full((), float("nan"), dtype=points.dtype)
    if steps >= 2:
        cosine = torch.nn.functional.cosine_similarity(updates[:-1], updates[1:], dim=1).mean()
    else:
        cosine = nan
    curvatures = []
    for index in range(steps):
        direction = _unflatten(updates[index], iterates[0])
        product = hessian_vector(loss, iterates[index], x, y, direction)
        curvatures.append(tree_dot(direction, product)
                          / tree_dot(direction, direction).clamp_min(1e-30))

    def grad_norm(phi: Params) -> torch.Tensor:
        return tree_norm(grad(loss)(phi, x, y))

    return {
        "consecutive_cosine": cosine,
        "path_length": path_length,
        "displacement": displacement,
        "straightness": displacement / path_length if steps else nan,
        "first_grad_norm": grad_norm(iterates[0]) if steps else nan,
        "last_grad_norm": grad_norm(iterates[-2]) if steps else nan,
        "path_curvature": torch.stack(curvatures).mean() if steps else nan,
        "top_eigenvalue": top_eigenvalue(loss, iterates[0], x, y, power_iterations),
    }


def fidelity(
    loss: LossFn,
    params: Params,
    task: TaskBatch,
    method: Method,
    reference: Method,
) -> dict[str, torch.Tensor]:
    """Cosine and norm ratio of ``method``'s meta-gradient to ``reference``'s (the exact
    method it approximates) at the same θ and task.

    The method's direction is first expressed as a gradient estimate
    (:func:`~metazoo.analysis.methods.as_gradient`: Reptile's θ − φ over kα); only the model
    parameters' part is compared (Meta-SGD's step sizes are not).
    """
    estimate, _, _ = method.meta_gradient(loss, *method.init(params), task)
    exact, _, _ = reference.meta_gradient(loss, *reference.init(params), task)
    estimate = as_gradient(method, {n: estimate[n] for n in params})
    exact = {n: exact[n] for n in params}
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
    method: Method,
    *,
    state: State | None = None,
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
        ``steps`` steps of the method's test-time adaptation from the perturbed θ.

    ``params`` are the meta-parameters; only the model's parameters are perturbed (Meta-SGD's
    step sizes are kept).
    """
    meta = params
    params = method.model_params(meta)
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

    start = {**meta, **theta}  # the method's own meta-parameters (step sizes) kept

    def after(task: TaskBatch) -> torch.Tensor:
        (adapted,) = method.adapt(loss, start, state or {}, task.support_x, task.support_y,
                                  [steps])
        return loss(adapted, task.query_x, task.query_y)

    return {"scale": high, "pre": pre.detach(), "post": torch.vmap(after)(tasks).detach()}
