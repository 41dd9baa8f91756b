"""What only the analysis reads of a method: the exact method it approximates, the rivals it
is set against, its fidelity variants and its direction as a gradient estimate.

Every read of those entries of the registry is here, so that a change of their shape
changes this file alone.
"""

from __future__ import annotations

from metazoo.algorithms import ALGORITHMS, Method, describe, get_algorithm, make_method
from metazoo.types import Params


def approximations(algorithms: list[str]) -> list[tuple[str, str]]:
    """(exact method, its cheap approximation) for every registered approximation whose exact
    method is compared too (the registry's ``approximates``)."""
    found = [(_own(name).approximates, name) for name in algorithms]
    return [(exact, name) for exact, name in found if exact in algorithms]


def contests(algorithms: list[str]) -> list[tuple[str, str]]:
    """(method, rival) for every head-to-head contest a registry entry declares (``rivals``)
    between two compared methods."""
    return [(name, rival) for name in algorithms for rival in _own(name).rivals
            if rival in algorithms]


def _own(name: str):
    """The analysis record of ``name`` under its default settings (what it approximates and
    its rivals do not depend on the settings)."""
    algorithm = ALGORITHMS[name]
    return algorithm.describe(algorithm.make_settings())


def fidelity_variants(name: str, source: str, steps: int, inner_lr: float | None,
                      options: dict) -> tuple[Method, dict[str, Method]]:
    """The exact method ``source`` and every variant of ``name`` that estimates its
    meta-gradient, by label, all with ``steps`` inner steps; the exact one takes the step
    size of the estimates it judges.

    Args:
        inner_lr: the inner step size of ``name`` (None: its own default).
        options: each algorithm's own settings, keyed by algorithm.
    """
    step = {} if inner_lr is None else {"inner_lr": inner_lr}
    method = make_method(name, inner_steps=steps, **step, **options.get(name, {}))
    exact = make_method(source, inner_steps=steps, inner_lr=method.settings.inner_lr,
                        **options.get(source, {}))
    variants = describe(method).variants or {"": method.settings}
    algorithm = get_algorithm(name)
    return exact, {label or name: algorithm.bind(settings) for label, settings in variants.items()}


def as_gradient(method: Method, direction: Params) -> Params:
    """``method``'s meta-gradient expressed as an estimate of a gradient (Reptile's θ − φ
    is divided by k·α)."""
    convert = describe(method).as_gradient
    return direction if convert is None else convert(direction)
