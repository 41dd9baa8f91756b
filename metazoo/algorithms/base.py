"""What a method is: frozen settings, a factory, and the small record it returns.

In the manner of optax's ``GradientTransformation``, a method is a factory over its frozen
settings that returns a :class:`Method`: the few closures every caller needs. Training,
evaluation, prediction, the analysis and the benchmarks loop over the registry and never name
a method. With ``params`` the meta-parameters (θ, and Meta-SGD's step sizes) and ``state``
what a method carries from one meta-iteration to the next (Reptile's inner Adam moment;
``{}`` for the others), every closure takes them in that order:

* ``init(model_params) -> (params, state)``: where meta-training starts;
* ``meta_gradient(loss, params, state, task) -> (gradient, stats, state)``: one task (the
  engine vmaps it over a batch and keeps the batch's mean state);
* ``adapt(loss, params, state, x, y, steps) -> [φ, …]``: test-time adaptation, the model's
  parameters after each of the increasing step counts ``steps``;
* ``model_params(params) -> θ``: the model's parameters among the meta-parameters.

What only the fidelity analysis and the report read is a second, optional record,
:class:`Analysis`. Settings are frozen dataclasses of :func:`~metazoo.options.option` fields
with errors that name fields; only the command line knows that flags exist.

A method's module imports torch and the core inside its factory, not at its top: the command
line reads every method's settings to build its flags, and ``metazoo --help`` must not wait
for torch to load (``tests/cli/test_startup.py`` checks).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from metazoo import options
from metazoo.options import option, positive_float, positive_int
from metazoo.space import SHARED, Space
from metazoo.types import LossFn, Params, TaskBatch

if TYPE_CHECKING:
    import torch

#: A few scalar statistics of one task's meta-gradient (``loss``, ``cg_residual``, …).
Stats = dict[str, "torch.Tensor"]
#: State a method carries between meta-iterations: a dict of tensors (nested dicts allowed).
State = dict[str, Any]


@dataclass(frozen=True)
class Settings:
    """Settings of the inner loop, shared by every algorithm; each method extends them.

    Joint training takes no inner step while training; it uses these only when it is
    adapted at test time.
    """

    inner_steps: int = option(1, "inner SGD steps k per task while meta-training")
    inner_lr: float = option(0.01, "inner SGD step size α")

    def __post_init__(self) -> None:
        options.check_field_types(self)
        positive_int("inner_steps", self.inner_steps, minimum=0)
        positive_float("inner_lr", self.inner_lr)


@dataclass(frozen=True)
class Method:
    """One method bound to its settings: the closures every caller needs (module docstring).

    ``test_steps`` is the number of test steps of the method's own protocol where that is
    part of the method (Meta-SGD: the k steps its step sizes were learned for), else None.
    """

    name: str
    settings: Settings
    init: Callable[[Params], tuple[Params, State]]
    meta_gradient: Callable[[LossFn, Params, State, TaskBatch], tuple[Params, Stats, State]]
    adapt: Callable[..., list[Params]]
    model_params: Callable[[Params], Params]
    test_steps: int | None = None


@dataclass(frozen=True)
class Analysis:
    """What the fidelity analysis and the report read of a method.

    Args:
        test_rule: how a test step adapts, in a few words, for the titles of results tables.
        approximates: the exact method whose meta-gradient this one estimates cheaply.
        rivals: methods the report sets against this one head to head.
        variants: labelled settings to measure in the fidelity analysis (empty: the method's
            own settings, under its name).
        as_gradient: the per-task direction as an estimate of a gradient of the model's
            parameters (Reptile's θ − φ over kα); None where the direction is one already.
    """

    test_rule: str
    approximates: str = ""
    rivals: tuple[str, ...] = ()
    variants: dict[str, Settings] = field(default_factory=dict)
    as_gradient: Callable[[Params], Params] | None = None


@dataclass(frozen=True)
class Algorithm:
    """A registry entry: a method's name, settings class, factory, (optional) analysis and
    the space of its options worth searching (``metazoo tune``; :mod:`metazoo.space`)."""

    name: str
    summary: str
    settings: type[Settings]
    make: Callable[[Settings], Method]
    analysis: Callable[[Settings], Analysis] | None = None
    space: Space = SHARED

    def options(self) -> dict[str, dataclasses.Field]:
        """The settings fields of this algorithm beyond the shared inner-loop ones."""
        return options.extra_fields(self.settings, Settings)

    def make_settings(self, **given: Any) -> Settings:
        """Build and validate settings; an option this algorithm does not take is refused."""
        return options.build(self.settings, given, self.name)

    def stored_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """A stored run's options as it was trained (:func:`metazoo.options.stored`)."""
        return options.stored(self.settings, given)

    def bind(self, settings: Settings | None = None, **given: Any) -> Method:
        """The method for ``settings`` (given, or built from ``given`` options)."""
        if settings is None:
            settings = self.make_settings(**given)
        elif given:
            raise ValueError("give either settings or options, not both")
        elif not isinstance(settings, self.settings):
            raise ValueError(f"{self.name} needs {self.settings.__name__}, got "
                             f"{type(settings).__name__}; build it with "
                             f"get_algorithm({self.name!r}).make_settings(...)")
        return self.make(settings)

    def describe(self, settings: Settings) -> Analysis:
        """The method's :class:`Analysis`, or that of a method with no analysis of its own:
        plain test steps, approximating nothing."""
        if self.analysis is not None:
            return self.analysis(settings)
        return Analysis(test_rule=sgd_rule(settings))


# Building blocks that several methods share; a method names the ones it uses.

def sgd_rule(settings: Settings) -> str:
    """The test rule of plain test steps, for :attr:`Analysis.test_rule`."""
    return f"test step size {settings.inner_lr:g}"


def plain_init(params: Params) -> tuple[Params, State]:
    """``init`` of a method that trains θ alone and carries no state."""
    return params, {}


def model_itself(params: Params) -> Params:
    """``model_params`` of a method whose meta-parameters are the model's parameters."""
    return params


def sgd_adapt(settings: Settings) -> Callable[..., list[Params]]:
    """``adapt`` by plain SGD steps of ``settings.inner_lr`` on the support set."""
    from metazoo.core import adapt_path, sgd

    optimizer = sgd(settings.inner_lr)

    def adapt(loss: LossFn, params: Params, state: State, x: torch.Tensor, y: torch.Tensor,
              steps: Sequence[int]) -> list[Params]:
        return adapt_path(loss, params, x, y, steps, optimizer)

    return adapt


ALGORITHMS: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> Algorithm:
    """Add ``algorithm`` to :data:`ALGORITHMS` (each method's file calls it once)."""
    if not issubclass(algorithm.settings, Settings):
        raise TypeError(f"{algorithm.name}: settings must extend metazoo.algorithms.Settings")
    if algorithm.name in ALGORITHMS:
        raise ValueError(f"algorithm {algorithm.name!r} is registered twice")
    ALGORITHMS[algorithm.name] = algorithm
    return algorithm


def unregister(name: str) -> None:
    """Remove an entry (for tests that register a method of their own)."""
    ALGORITHMS.pop(name, None)
