"""Meta-learning algorithms: one module each, found through one registry.

Each module registers an :class:`~metazoo.algorithms.base.Algorithm`: its settings class and
a factory returning the :class:`~metazoo.algorithms.base.Method` record (see
:mod:`metazoo.algorithms.base`). Every module of this package is imported here, so adding a
method means adding one file; importing them loads their settings, not torch (each factory
imports its maths).
"""

from __future__ import annotations

import importlib
import pkgutil

from metazoo.algorithms.base import (
    ALGORITHMS,
    Algorithm,
    Analysis,
    Method,
    Settings,
    State,
    Stats,
    register,
    unregister,
)
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
    return get_algorithm(name).bind(**options)


def describe(method: Method) -> Analysis:
    """What the analysis and the report read of ``method`` (:meth:`Algorithm.describe`)."""
    return get_algorithm(method.name).describe(method.settings)


def own_test_steps(method: Method, default: int) -> int:
    """The number of test steps of ``method``'s own protocol (Meta-SGD: the k its step sizes
    were learned for), or ``default`` for a method whose protocol takes any."""
    return default if method.test_steps is None else method.test_steps


def meta_gradient(
    method: Method | str,
    loss: LossFn,
    params: Params,
    state: State,
    batch: TaskBatch,
    *,
    strategy: str = "vmap",
    chunk_size: int | None = None,
) -> tuple[Params, Stats, State]:
    """The meta-gradient of ``method`` averaged over the tasks of ``batch``.

    Args:
        method: a :class:`Method`, or a registered name (then with default settings).
        loss: pure loss ``(params, x, y) -> scalar`` (see :func:`metazoo.models.make_loss`).
        params: the meta-parameters (from ``method.init``).
        state: the state the method carries (from ``method.init``; ``{}`` for most).
        batch: tasks stacked on a leading axis.
        strategy: ``"vmap"`` or ``"loop"`` over tasks.
        chunk_size: vmap at most this many tasks at once.

    Returns:
        (mean gradient shaped like ``params``, mean per-task statistics, the tasks' mean
        new state).
    """
    from metazoo.core.batch import mean_over_tasks

    if isinstance(method, str):
        method = make_method(method)
    return mean_over_tasks(lambda task: method.meta_gradient(loss, params, state, task), batch,
                           strategy=strategy, chunk_size=chunk_size)


__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "Algorithm", "Analysis", "Method", "Settings",
           "State", "Stats", "describe", "get_algorithm", "make_method", "meta_gradient",
           "own_test_steps", "register", "unregister"]
