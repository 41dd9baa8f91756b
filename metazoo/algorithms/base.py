"""The contract every method meets: its settings, its registry entry and the bound method.

An algorithm is registered once, in its own file, as an :class:`Algorithm`: a record of pure
functions of ``(settings, …)``, in the manner of optax's ``GradientTransformation``. The
entry carries everything a caller needs, so that training, evaluation, the analysis and the
benchmarks loop over the registry without ever naming a method:

* ``meta_gradient(loss, meta, task, settings)``: the per-task meta-gradient (vmapped over a
  batch by the engine) and a few scalar statistics;
* ``init(settings, params)``: the meta-parameters it trains, given the model's parameters
  (Meta-SGD adds its step sizes). They hold the model's parameters under the same names;
* ``model_params(settings, meta)``: the model's parameters, given the meta-parameters;
* ``adapt(settings, loss, meta, x, y, steps)``: its test-time adaptation, the model's
  parameters after each of the (increasing) step counts ``steps`` — step size, per-parameter
  step sizes, proximal term and anchor all folded in;
* ``as_gradient(settings, direction)``: its direction expressed as an estimate of a gradient
  (Reptile's θ − φ divided by kα), for the fidelity analysis;
* ``variants(settings)``: the settings to compare in that analysis (e.g. several CG depths);
* ``approximates``: the name of the exact method whose meta-gradient this one estimates
  cheaply (the analysis pairs them);
* ``rivals``: methods the report sets against this one head to head (iMAML, the principled
  implicit gradient, against Reptile, the heuristic first-order one);
* ``own_test_steps(settings)``: the number of test steps its own protocol takes, where that
  is part of the method (Meta-SGD: the k steps its step sizes were learned for), else None;
* ``carried(settings, name)``: whether the meta-parameter ``name`` is state the method carries
  from one meta-iteration to the next rather than trains (Reptile's inner Adam moment, which
  the reference keeps across tasks). For such an entry ``meta_gradient`` returns its new
  value, not a gradient: the engine sets it to the batch's mean and the outer optimizer
  leaves it alone. It is checkpointed with the rest, and test-time adaptation reads it.

:meth:`Algorithm.make` binds settings to the entry and returns a :class:`Method`, the object
callers use. Settings are frozen dataclasses with plain field names and errors that name
fields; only the command line knows that flags exist.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from metazoo.core.adapt import adapt as run_steps
from metazoo.types import LossFn, Params, TaskBatch

Stats = dict[str, torch.Tensor]
MetaGradient = Callable[[LossFn, Params, TaskBatch, "Settings"], tuple[Params, Stats]]


def check_field_types(instance) -> None:
    """Raise a clear ``ValueError`` for any field whose value is not of its default's type
    (ints where ints are expected, numbers where floats are, lists of ints, …)."""
    for spec in dataclasses.fields(instance):
        if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            continue
        default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
        value = getattr(instance, spec.name)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif isinstance(default, (list, dict, str)):
            ok = isinstance(value, type(default))
        else:
            ok = True
        if not ok:
            raise ValueError(f"{spec.name} must be of type {type(default).__name__}, got "
                             f"{_short(value)} ({type(value).__name__})")


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error never echoes a huge input."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


#: ``option(absent=...)`` left unset: a stored run without the field used today's default.
_UNSET = object()


def option(default, help: str, *, formerly: str = "", absent: Any = _UNSET):
    """A settings field with a one-line description (the CLI's ``--help`` reads it).

    Mutable defaults (lists, dicts) get a factory, so instances never share them.
    ``formerly`` is the field's previous name: stored runs and configs that use it still load.
    ``absent`` is the value a stored run that predates the field used, where that differs from
    today's default: a run is then read back as it was trained.
    """
    metadata = {"help": help, "formerly": formerly}
    if absent is not _UNSET:
        metadata["absent"] = absent
    if isinstance(default, (list, tuple, dict)):
        kind = list if isinstance(default, tuple) else type(default)
        return field(default_factory=lambda: kind(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def positive_int(name: str, value: Any, minimum: int = 1) -> None:
    """Raise a clear ``ValueError`` unless ``value`` is an integer ≥ ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {_short(value)}")


def positive_float(name: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raise a clear ``ValueError`` unless ``value`` is a finite number > 0 (≥ 0 if allowed)."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and (value >= 0 if allow_zero else value > 0))
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, "
                         f"got {_short(value)}")


@dataclass(frozen=True)
class Settings:
    """Settings of the inner loop, shared by every algorithm; each method extends them.

    Joint training takes no inner step while training; it uses these only when it is
    adapted at test time.
    """

    inner_steps: int = option(1, "inner SGD steps k per task while meta-training")
    inner_lr: float = option(0.01, "inner SGD step size α")

    def __post_init__(self) -> None:
        check_field_types(self)
        positive_int("inner_steps", self.inner_steps, minimum=0)
        positive_float("inner_lr", self.inner_lr)

    def test_rule(self) -> str:
        """How a test step adapts, in a few words, for the titles of results tables."""
        return f"test step size {self.inner_lr:g}"


def sgd_path(loss: LossFn, params: Params, x: torch.Tensor, y: torch.Tensor,
             steps: Sequence[int], lr: float | Params, *, regularization: float = 0.0,
             **options: Any) -> list[Params]:
    """The iterates after each of the increasing step counts ``steps`` (0 = ``params``).

    One trajectory through :func:`~metazoo.core.adapt`; with ``regularization`` λ > 0 the
    objective has the proximal term λ/2‖φ − params‖². ``options`` go to ``adapt``
    (mini-batches, Adam's second moment).
    """
    return iterates_at(lambda most, kept: run_steps(
        loss, params, x, y, most, lr, regularization=regularization, keep=kept, **options),
        steps)


def iterates_at(solve: Callable[[int, list[int]], Any], steps: Sequence[int]) -> list[Params]:
    """The iterates after each of the step counts ``steps`` of one trajectory: ``solve(most,
    kept)`` runs ``most`` steps and returns an :class:`~metazoo.core.Adapted` holding φ after
    each count in ``kept`` (``adapt`` and ``newton`` both do)."""
    steps = list(steps)
    if not steps:
        return []
    kept = sorted(set(steps))
    iterates = solve(max(steps), kept).iterates
    return [iterates[kept.index(count)] for count in steps]


def _same(settings: Settings, params: Params) -> Params:
    return params


def _sgd_adapt(settings: Settings, loss: LossFn, meta: Params, x, y,
               steps: Sequence[int]) -> list[Params]:
    return sgd_path(loss, meta, x, y, steps, settings.inner_lr)


def _unchanged(settings: Settings, direction: Params) -> Params:
    return direction


def _itself(settings: Settings) -> dict[str, Settings]:
    return {"": settings}


def _any_steps(settings: Settings) -> int | None:
    return None


def _never(settings: Settings, name: str) -> bool:
    return False


@dataclass(frozen=True)
class Algorithm:
    """A registry entry: the whole contract of one method (see the module docstring)."""

    name: str
    settings: type[Settings]
    meta_gradient: MetaGradient
    summary: str
    init: Callable[[Settings, Params], Params] = _same
    model_params: Callable[[Settings, Params], Params] = _same
    adapt: Callable[..., list[Params]] = _sgd_adapt
    as_gradient: Callable[[Settings, Params], Params] = _unchanged
    variants: Callable[[Settings], dict[str, Settings]] = _itself
    approximates: str = ""
    rivals: tuple[str, ...] = ()
    own_test_steps: Callable[[Settings], int | None] = _any_steps
    carried: Callable[[Settings, str], bool] = _never

    def options(self) -> dict[str, dataclasses.Field]:
        """The settings fields of this algorithm beyond the shared inner-loop ones."""
        shared = {spec.name for spec in dataclasses.fields(Settings)}
        return {spec.name: spec for spec in dataclasses.fields(self.settings)
                if spec.name not in shared}

    def stored_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """A stored run's options with each field it predates set to what it used then
        (``option(absent=...)``), not to today's default."""
        fields = dataclasses.fields(self.settings)
        given = set(options) | {spec.metadata.get("formerly") for spec in fields
                                if spec.metadata.get("formerly") in options}
        missing = {spec.name: spec.metadata["absent"] for spec in fields
                   if "absent" in spec.metadata and spec.name not in given}
        return {**options, **missing}

    def make_settings(self, **options: Any) -> Settings:
        """Build and validate settings; an option this algorithm does not take is refused."""
        fields = {spec.name: spec for spec in dataclasses.fields(self.settings)}
        renamed = {spec.metadata.get("formerly"): name for name, spec in fields.items()
                   if spec.metadata.get("formerly")}
        given = {renamed.get(key, key): value for key, value in options.items()}
        unknown = sorted(set(given) - set(fields))
        if unknown:
            hints = []
            for key in unknown[:3]:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hints.append(f"{_short(key, 40)}" + (f" (did you mean {close[0]}?)" if close else ""))
            more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
            raise ValueError(f"{self.name} takes no option {', '.join(hints)}{more}; its options "
                             f"are: {', '.join(fields)}")
        return self.settings(**given)

    def make(self, settings: Settings | None = None, **options: Any) -> Method:
        """This algorithm bound to its settings (given, or built from ``options``)."""
        if settings is None:
            settings = self.make_settings(**options)
        elif options:
            raise ValueError("give either settings or options, not both")
        elif not isinstance(settings, self.settings):
            raise ValueError(f"{self.name} needs {self.settings.__name__}, got "
                             f"{type(settings).__name__}; build it with "
                             f"get_algorithm({self.name!r}).make_settings(...)")
        return Method(self, settings)


@dataclass(frozen=True)
class Method:
    """An algorithm bound to its settings: what training, evaluation and analysis call."""

    algorithm: Algorithm
    settings: Settings

    @property
    def name(self) -> str:
        return self.algorithm.name

    def meta_gradient(self, loss: LossFn, meta: Params, task: TaskBatch) -> tuple[Params, Stats]:
        """The meta-gradient of one task (no leading task axis) and its statistics."""
        return self.algorithm.meta_gradient(loss, meta, task, self.settings)

    def init(self, params: Params) -> Params:
        """The meta-parameters to train, starting from the model's parameters ``params``."""
        return self.algorithm.init(self.settings, params)

    def model_params(self, meta: Params) -> Params:
        """The model's parameters held in the meta-parameters ``meta``."""
        return self.algorithm.model_params(self.settings, meta)

    def with_model_params(self, meta: Params, params: Params) -> Params:
        """``meta`` with its model parameters replaced by ``params`` (the rest kept)."""
        return {**meta, **params}

    def adapt(self, loss: LossFn, meta: Params, x: torch.Tensor, y: torch.Tensor,
              steps: Sequence[int]) -> list[Params]:
        """Test-time adaptation on one task's ``(x, y)``: the model's parameters after each
        of the increasing step counts ``steps`` (0 gives the starting parameters)."""
        steps = list(steps)
        if any(b < a for a, b in itertools.pairwise(steps)) or (steps and steps[0] < 0):
            raise ValueError(f"test steps must be increasing integers >= 0, got {steps}")
        return self.algorithm.adapt(self.settings, loss, meta, x, y, steps)

    def carried(self, meta: Params) -> list[str]:
        """The entries of ``meta`` that are carried state, not trained (see the module
        docstring): the outer step assigns them the batch's mean value."""
        return [name for name in meta if self.algorithm.carried(self.settings, name)]

    def as_gradient(self, direction: Params) -> Params:
        """The per-task direction as an estimate of a gradient of the model's parameters."""
        return self.algorithm.as_gradient(self.settings, direction)

    def own_test_steps(self, default: int) -> int:
        """Test steps of the method's own protocol, or ``default`` where it has none."""
        steps = self.algorithm.own_test_steps(self.settings)
        return default if steps is None else steps

    def variants(self) -> dict[str, Method]:
        """Labelled settings to compare in the fidelity analysis (this method's own)."""
        return {label: Method(self.algorithm, settings)
                for label, settings in self.algorithm.variants(self.settings).items()}


ALGORITHMS: dict[str, Algorithm] = {}


def register(name: str, settings: type[Settings], summary: str, **contract: Any):
    """Decorator adding a per-task meta-gradient function to :data:`ALGORITHMS`.

    ``contract`` holds the entry's other functions (see :class:`Algorithm`); those not given
    take the defaults of a method that trains θ alone and adapts by plain SGD.
    """
    if not issubclass(settings, Settings):
        raise TypeError(f"{name}: settings must extend metazoo.algorithms.Settings")

    def add(fn: MetaGradient) -> MetaGradient:
        if name in ALGORITHMS:
            raise ValueError(f"algorithm {name!r} is registered twice")
        ALGORITHMS[name] = Algorithm(name, settings, fn, summary, **contract)
        return fn

    return add


def unregister(name: str) -> None:
    """Remove an entry (for tests that register a method of their own)."""
    ALGORITHMS.pop(name, None)
