"""Meta-learning algorithms: one module each, found through one registry.

Each module registers its method with :func:`~metazoo.algorithms.base.register`: a per-task
meta-gradient ``(loss, meta, task, settings) -> (gradient, stats)`` plus the rest of its
contract (meta-parameters, test-time adaptation, …; see :mod:`metazoo.algorithms.base`).
Every module of this package is imported here, so adding a method means adding one file.
"""

from __future__ import annotations

import importlib
import pkgutil

import torch

from metazoo.algorithms.base import (
    ALGORITHMS,
    Algorithm,
    Method,
    Settings,
    option,
    register,
    sgd_path,
    unregister,
)
from metazoo.core.batch import mean_over_tasks
from metazoo.types import LossFn, Params, TaskBatch

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

#: The method a run trains when none is named: MAML, whose paper's sinusoid setup the run
#: defaults follow (:class:`metazoo.engine.TrainConfig`).
DEFAULT_ALGORITHM = "maml"


def get_algorithm(name: str) -> Algorithm:
    """The registered algorithm called ``name``, or a clear error listing the choices."""
    if name not in ALGORITHMS:
        raise ValueError(
            f"unknown algorithm {name!r}; choose one of: {', '.join(sorted(ALGORITHMS))}"
        )
    return ALGORITHMS[name]


def make_method(name: str, **options) -> Method:
    """The algorithm ``name`` bound to settings built from ``options`` (refusing unknown ones)."""
    return get_algorithm(name).make(**options)


def meta_gradient(
    method: Method | str,
    loss: LossFn,
    params: Params,
    batch: TaskBatch,
    *,
    strategy: str = "vmap",
    chunk_size: int | None = None,
) -> tuple[Params, dict[str, torch.Tensor]]:
    """The meta-gradient of ``method`` averaged over the tasks of ``batch``.

    Args:
        method: a bound :class:`Method`, or a registered name (then with default settings).
        loss: pure loss ``(params, x, y) -> scalar`` (see :func:`metazoo.models.make_loss`).
        params: the meta-parameters (``method.init(θ)``).
        batch: tasks stacked on a leading axis.
        strategy: ``"vmap"`` or ``"loop"`` over tasks.
        chunk_size: vmap at most this many tasks at once.

    Returns:
        (mean gradient dict shaped like ``params``, mean per-task statistics).
    """
    if isinstance(method, str):
        method = make_method(method)
    return mean_over_tasks(lambda theta, task: method.meta_gradient(loss, theta, task),
                           params, batch, strategy=strategy, chunk_size=chunk_size)


__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "Algorithm", "Method", "Settings", "get_algorithm",
           "make_method", "meta_gradient", "option", "register", "sgd_path", "unregister"]
