"""A two-parameter task family whose loss surfaces can be drawn.

Tasks are 1-D linear regressions y = w·x + ε (w ~ N(2, 1.5²)) fitted by a model with a
weight and a bias, so θ is a point in the plane. The figure shows, over that plane, the
mean loss at θ itself (what joint training minimises) beside the mean loss after k inner
steps from θ (what MAML minimises), where each algorithm's θ ends up after meta-training
from the same start, its outer trajectory, and the inner paths of a few tasks from the θ with
the lowest loss after the inner steps.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.func import vmap

from metazoo.algorithms import ALGORITHMS, make_method
from metazoo.analysis import report as rpt
from metazoo.core import adapt_path, sgd
from metazoo.engine.outer import fit
from metazoo.models import make_loss
from metazoo.tasks import LinearRegression

TASKS = LinearRegression(dim=1, k_shot=5, query_shots=5, weight_mean=2.0, weight_scale=1.5,
                         noise=0.1)
START = {"weight": torch.tensor([[-2.0]]), "bias": torch.tensor([2.0])}


def train_toy(algorithm: str, steps: int, inner_lr: float, iterations: int, seed: int = 0):
    """Meta-train θ ∈ R² from :data:`START`; returns the outer trajectory ``[iterations+1, 2]``."""
    loss = make_loss(nn.Linear(1, 1))
    method = make_method(algorithm, inner_steps=steps, inner_lr=inner_lr)
    path = fit(method, loss, START, TASKS, iterations=iterations, meta_batch=16, lr=0.05,
               seed=seed)
    return torch.stack([torch.cat([meta["weight"].flatten(), meta["bias"]]) for meta in path])


def surfaces(steps: int, inner_lr: float, grid: int = 60, num_tasks: int = 200):
    """Mean loss at θ and after ``steps`` inner steps, over a grid of θ = (w, b)."""
    loss = make_loss(nn.Linear(1, 1))
    tasks = TASKS.sample(num_tasks, torch.Generator().manual_seed(123))
    weights = torch.linspace(-3, 5, grid)
    biases = torch.linspace(-3, 3, grid)
    w, b = torch.meshgrid(weights, biases, indexing="xy")  # [grid, grid]

    def at(theta_w, theta_b):
        theta = {"weight": theta_w.reshape(1, 1), "bias": theta_b.reshape(1)}

        def one(task):
            (adapted,) = adapt_path(loss, theta, task.support_x, task.support_y, [steps],
                                    sgd(inner_lr))
            return (loss(theta, task.query_x, task.query_y),
                    loss(adapted, task.query_x, task.query_y))

        pre, post = vmap(one)(tasks)
        return pre.mean(), post.mean()

    pre, post = vmap(vmap(at))(w, b)
    return weights, biases, pre, post


def inner_paths(theta: torch.Tensor, steps: int, inner_lr: float, count: int = 3):
    """Iterates ``[count, steps+1, 2]`` of the inner loop from θ on a few tasks."""
    loss = make_loss(nn.Linear(1, 1))
    tasks = TASKS.sample(count, torch.Generator().manual_seed(7))
    start = {"weight": theta[:1].reshape(1, 1), "bias": theta[1:]}
    paths = []
    for index in range(count):
        task = tasks.task(index)
        iterates = adapt_path(loss, start, task.support_x, task.support_y, range(steps + 1),
                              sgd(inner_lr))
        paths.append(torch.stack([torch.cat([phi["weight"].flatten(), phi["bias"]])
                                  for phi in iterates]))
    return torch.stack(paths)


def post_adaptation_loss(theta: torch.Tensor, steps: int, inner_lr: float) -> float:
    """Mean query loss after ``steps`` inner steps from θ ∈ R², over the surfaces' tasks."""
    loss = make_loss(nn.Linear(1, 1))
    tasks = TASKS.sample(200, torch.Generator().manual_seed(123))
    start = {"weight": theta[:1].reshape(1, 1), "bias": theta[1:]}

    def one(task):
        (adapted,) = adapt_path(loss, start, task.support_x, task.support_y, [steps],
                                sgd(inner_lr))
        return loss(adapted, task.query_x, task.query_y)

    return vmap(one)(tasks).mean().item()


def toy_picture(algorithms: list[str] | None = None, steps: int = 3, inner_lr: float = 0.3,
                iterations: int = 300) -> dict:
    """What the picture shows (every registered algorithm by default): each outer trajectory,
    the algorithm whose θ has the lowest loss after the inner steps, and both surfaces."""
    trajectories = {a: train_toy(a, steps, inner_lr, iterations)
                    for a in (algorithms or list(ALGORITHMS))}
    best = min(trajectories, key=lambda a: post_adaptation_loss(trajectories[a][-1], steps,
                                                                inner_lr))
    return {"trajectories": trajectories, "paths_from": best, "steps": steps,
            "inner_lr": inner_lr, "surfaces": surfaces(steps, inner_lr)}


def draw_toy(path: Path, picture: dict) -> None:
    """Draw :func:`toy_picture`'s picture into ``path``."""
    import matplotlib.pyplot as plt

    trajectories, steps, inner_lr = picture["trajectories"], picture["steps"], picture["inner_lr"]
    weights, biases, pre, post = picture["surfaces"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for axis, surface, label in ((axes[0], pre, "mean loss at θ (before adaptation)"),
                                 (axes[1], post, f"mean loss after {steps} inner steps")):
        levels = torch.quantile(surface.flatten(), torch.linspace(0.0, 0.9, 15)).unique()
        contour = axis.contourf(weights, biases, surface, levels=levels.numpy(), cmap="viridis")
        figure.colorbar(contour, ax=axis)
        for algorithm, trajectory in trajectories.items():
            axis.plot(trajectory[:, 0], trajectory[:, 1], lw=1)
            axis.plot(trajectory[-1, 0], trajectory[-1, 1], "o", label=algorithm)
        axis.set_title(label)
        axis.set_xlabel("weight")
        axis.set_ylabel("bias")
    for inner in inner_paths(trajectories[picture["paths_from"]][-1], steps, inner_lr):
        axes[1].plot(inner[:, 0], inner[:, 1], "w.-", lw=0.8)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def toy_blocks(iterations: int, steps: int = 3, inner_lr: float = 0.3) -> list:
    """The picture's report blocks: what it shows, the figure to draw, each final θ."""
    picture = toy_picture(steps=steps, inner_lr=inner_lr, iterations=iterations)
    final = {a: t[-1].tolist() for a, t in picture["trajectories"].items()}
    return [rpt.heading("A picture: where each θ ends up on a drawable task family"),
            rpt.paragraph(__doc__.split("\n\n")[1].replace("\n", " ")
                          + f" Here: {iterations} meta-iterations, k = {steps}, α = {inner_lr}."),
            rpt.figure("toy_landscape.png", partial(draw_toy, picture=picture),
                       "Left: mean loss at θ; right: mean loss after the inner steps. Lines: "
                       "outer trajectories from the same start; dots: final θ; white: inner "
                       f"paths of three tasks from {picture['paths_from']}'s θ, the lowest "
                       "loss after the inner steps."),
            rpt.bullets([f"{a}: θ = (w {w:.2f}, b {b:.2f})" for a, (w, b) in final.items()])]
