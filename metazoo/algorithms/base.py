"""What every algorithm shares: its settings base class and the registry entry."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from metazoo.types import LossFn, Params, TaskBatch

MetaGradient = Callable[
    [LossFn, Params, TaskBatch, "InnerLoop"], tuple[Params, dict[str, torch.Tensor]]
]


def check_field_types(instance) -> None:
    """Raise a clear ``ValueError`` for any field whose value is not of its default's type
    (ints where ints are expected, numbers where floats are, lists of ints, …)."""
    for spec in dataclasses.fields(instance):
        if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            continue
        default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
        value = getattr(instance, spec.name)
        flag = "--" + spec.name.replace("_", "-")
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
                             f"{value!r} ({flag})")


def option(default, help: str):
    """A settings field with a ``--help`` line (the CLI builds its flags from these).

    Mutable defaults (lists, dicts) get a factory, so instances never share them.
    """
    if isinstance(default, (list, tuple, dict)):
        kind = list if isinstance(default, tuple) else type(default)
        return field(default_factory=lambda: kind(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class InnerLoop:
    """Settings of the inner loop, shared by every algorithm.

    Joint training takes no inner step while training; it uses these only when it is
    adapted at test time.
    """

    inner_steps: int = option(1, "inner SGD steps k per task while meta-training")
    inner_lr: float = option(0.01, "inner SGD step size α")

    def __post_init__(self) -> None:
        check_field_types(self)
        if not isinstance(self.inner_steps, int) or self.inner_steps < 0:
            raise ValueError(
                f"inner_steps must be an integer >= 0, got {self.inner_steps!r} (--inner-steps)"
            )
        if not (math.isfinite(self.inner_lr) and self.inner_lr > 0):
            raise ValueError(f"inner_lr must be a positive number, got {self.inner_lr!r} (--inner-lr)")

    @property
    def regularization(self) -> float:
        """Proximal strength λ of the inner objective (0 except for iMAML)."""
        return 0.0

    def extend(self, params: Params) -> Params:
        """The meta-parameters to train, given the model's parameters θ₀.

        Most methods train θ alone; Meta-SGD adds its per-parameter step sizes.
        """
        return params

    def test_time(self, params: Params) -> tuple[Params, float | Params]:
        """How to adapt at test time: (the model's parameters, step size or per-parameter
        step sizes). Parameters with step size 0 stay fixed (ANIL's body)."""
        return params, self.inner_lr


@dataclass(frozen=True)
class Algorithm:
    """A registry entry: a name, its settings class and its per-task meta-gradient."""

    name: str
    settings: type[InnerLoop]
    meta_gradient: MetaGradient
    summary: str

    def make_settings(self, **options) -> InnerLoop:
        """Build settings from keyword options, ignoring ones this algorithm does not take."""
        names = {f.name for f in dataclasses.fields(self.settings)}
        return self.settings(**{k: v for k, v in options.items() if k in names})


ALGORITHMS: dict[str, Algorithm] = {}


def register(name: str, settings: type[InnerLoop], summary: str):
    """Decorator adding a per-task meta-gradient function to :data:`ALGORITHMS`."""

    def add(fn: MetaGradient) -> MetaGradient:
        if name in ALGORITHMS:
            raise ValueError(f"algorithm {name!r} is registered twice")
        ALGORITHMS[name] = Algorithm(name, settings, fn, summary)
        return fn

    return add
