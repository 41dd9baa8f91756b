"""One outer step, and a plain outer loop for library use.

:func:`outer_step` is the step every training loop of metazoo takes: the mean meta-gradient
of a batch of tasks, handed to an ordinary ``torch.optim`` optimizer. ``metazoo train`` wraps
it with checkpoints, budgets and logging; :func:`fit` is the bare loop (the drawable toy of
the analysis uses it, and so can a user's script).
"""

from __future__ import annotations

import torch

from metazoo.algorithms import Method, State, meta_gradient
from metazoo.tasks.base import TaskDistribution
from metazoo.types import LossFn, Params, TaskBatch


def outer_step(method: Method, loss: LossFn, params: Params, state: State, batch: TaskBatch,
               optimizer: torch.optim.Optimizer, *, strategy: str = "vmap",
               chunk_size: int | None = None) -> tuple[dict[str, torch.Tensor], State]:
    """Set each meta-parameter's ``.grad`` to the batch's mean meta-gradient and step.

    Returns the batch's mean statistics (e.g. ``loss``) and the method's new carried state.
    """
    grads, stats, state = meta_gradient(method, loss, params, state, batch, strategy=strategy,
                                        chunk_size=chunk_size)
    apply_step(params, grads, optimizer)
    return stats, state


def apply_step(params: Params, grads: Params | None, optimizer: torch.optim.Optimizer) -> None:
    """Step ``optimizer`` on the batch's mean meta-gradient ``grads`` (``None``: a dropped
    batch, which changes nothing)."""
    for name, p in params.items():
        p.grad = None if grads is None else grads[name]
    optimizer.step()


def fit(method: Method, loss: LossFn, params: Params, tasks: TaskDistribution, *,
        iterations: int, meta_batch: int, lr: float = 1e-3, seed: int = 0,
        strategy: str = "vmap") -> list[Params]:
    """Meta-train from the model's parameters ``params`` with Adam; no files, no budget.

    Returns the meta-parameters after each iteration, the first being the start (so that a
    caller can draw the outer trajectory); each is a detached copy.
    """
    start, state = method.init(params)
    params = {name: p.detach().clone() for name, p in start.items()}
    optimizer = torch.optim.Adam(params.values(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    path = [{name: p.detach().clone() for name, p in params.items()}]
    for _ in range(iterations):
        _, state = outer_step(method, loss, params, state, tasks.sample(meta_batch, generator),
                              optimizer, strategy=strategy)
        path.append({name: p.detach().clone() for name, p in params.items()})
    return path
