"""Meta-learning algorithms: one module each, found through one registry.

An algorithm is a pure function ``(loss, params, task, settings) -> (gradient, stats)`` of
one task; the engine vmaps it over a task batch. Each module registers itself with
:func:`~metazoo.algorithms.base.register`; every module of this package is imported here, so
adding a method means adding one file.
"""

from __future__ import annotations

import importlib
import pkgutil

import torch

from metazoo.algorithms.base import ALGORITHMS, Algorithm, InnerLoop, register
from metazoo.core.batch import mean_over_tasks
from metazoo.types import LossFn, Params, TaskBatch

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")


def get_algorithm(name: str) -> Algorithm:
    """The registered algorithm called ``name``, or a clear error listing the choices."""
    if name not in ALGORITHMS:
        raise ValueError(
            f"unknown algorithm {name!r}; choose one of: {', '.join(sorted(ALGORITHMS))}"
        )
    return ALGORITHMS[name]


def meta_gradient(
    algorithm: str | Algorithm,
    loss: LossFn,
    params: Params,
    batch: TaskBatch,
    settings: InnerLoop | None = None,
    *,
    strategy: str = "vmap",
    chunk_size: int | None = None,
) -> tuple[Params, dict[str, torch.Tensor]]:
    """The meta-gradient of ``algorithm`` averaged over the tasks of ``batch``.

    Args:
        algorithm: a registered name or an :class:`Algorithm`.
        loss: pure loss ``(params, x, y) -> scalar`` (see :func:`metazoo.models.make_loss`).
        params: θ.
        batch: tasks stacked on a leading axis.
        settings: the algorithm's settings (default: its defaults).
        strategy: ``"vmap"`` or ``"loop"`` over tasks.
        chunk_size: vmap at most this many tasks at once.

    Returns:
        (mean gradient dict shaped like ``params``, mean per-task statistics).
    """
    if isinstance(algorithm, str):
        algorithm = get_algorithm(algorithm)
    if settings is None:
        settings = algorithm.settings()
    return mean_over_tasks(
        lambda theta, task: algorithm.meta_gradient(loss, theta, task, settings),
        params, batch, strategy=strategy, chunk_size=chunk_size,
    )


__all__ = ["ALGORITHMS", "Algorithm", "InnerLoop", "get_algorithm", "meta_gradient", "register"]
