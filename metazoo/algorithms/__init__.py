"""Meta-learning algorithms: one module each, found through one registry.

An algorithm is a pure function ``(loss, params, task, settings) -> (gradient, stats)`` of
one task; the engine vmaps it over a task batch. Each module registers itself with
:func:`~metazoo.algorithms.base.register`; every module of this package is imported here, so
adding a method means adding one file.
"""

from __future__ import annotations

import importlib
import pkgutil

from metazoo.algorithms.base import ALGORITHMS, Algorithm, InnerLoop, register

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


__all__ = ["ALGORITHMS", "Algorithm", "InnerLoop", "get_algorithm", "register"]
