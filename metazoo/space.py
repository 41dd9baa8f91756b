"""Search spaces: the options of a method worth searching, each with its range and why.

The description only: a leaf module that each method's file uses to declare its space
(:class:`~metazoo.algorithms.base.Algorithm`'s ``space``); searching it is
:mod:`metazoo.search`.

A space is a tuple of entries. An entry names one option (a run option such as ``outer_lr``,
or one of the method's own, such as iMAML's ``lam``), its range (:class:`Float`,
:class:`Int`) or choices (:class:`Choice`), an optional condition (:class:`When`: the entry
is searched only while other options take given values, e.g. iMAML's ``solver_cg_steps``
only with ``inner_solver`` "newton") and one line saying why the range is what it is.

Each method declares its space in its own module and registers it with its entry;
:data:`SHARED` is the space of the options every method shares, from which those spaces are
built. A user narrows or widens a space from a JSON file
(:func:`metazoo.search.space.read_space_file`).
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metazoo.messages import brief

#: Run options (fields of :class:`~metazoo.engine.config.TrainConfig`) a space may hold;
#: every other entry is one of the method's own options.
RUN_OPTIONS = ("outer_lr", "meta_batch", "inner_steps", "inner_lr", "outer_eps", "lr_schedule",
               "outer_optimizer")


@dataclass(frozen=True)
class When:
    """The entry applies only while each named option takes one of its listed values.

    An option named here is either searched too (its sampled value decides) or fixed by the
    run's configuration.
    """

    values: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def holds(self, options: Mapping[str, Any]) -> bool:
        return all(options.get(name) in allowed for name, allowed in self.values.items())

    def describe(self) -> str:
        return " and ".join(f"{name} in {list(allowed)}" for name, allowed in self.values.items())


@dataclass(frozen=True)
class Float:
    """A real option in ``[low, high]``, sampled on a log scale when ``log``."""

    name: str
    low: float
    high: float
    why: str
    log: bool = False
    when: When = field(default_factory=When)

    def check(self) -> None:
        if not (is_number(self.low) and is_number(self.high) and self.low <= self.high):
            raise ValueError(f"low and high must be numbers with low <= high, got "
                             f"{self.low!r} and {self.high!r}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0, got {self.low!r}")

    def values(self) -> tuple[Any, ...]:
        return (self.low, self.high)

    def suggest(self, trial) -> float:
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def describe(self) -> str:
        return f"{self.low:g} to {self.high:g}{' (log)' if self.log else ''}"


@dataclass(frozen=True)
class Int:
    """An integer option in ``[low, high]``, sampled on a log scale when ``log``."""

    name: str
    low: int
    high: int
    why: str
    log: bool = False
    when: When = field(default_factory=When)

    def check(self) -> None:
        if not (is_integer(self.low) and is_integer(self.high) and self.low <= self.high):
            raise ValueError(f"low and high must be integers with low <= high, got "
                             f"{self.low!r} and {self.high!r}")
        if self.log and self.low < 1:
            raise ValueError(f"a log scale needs low >= 1, got {self.low!r}")

    def values(self) -> tuple[Any, ...]:
        return (self.low, self.high)

    def suggest(self, trial) -> int:
        return trial.suggest_int(self.name, self.low, self.high, log=self.log)

    def describe(self) -> str:
        return f"{self.low} to {self.high}{' (log)' if self.log else ''}"


class Keep(enum.Enum):
    """The run's own value: what an option whose entry does not apply keeps (an enum, so
    that it stays one object through copies and pickling)."""

    KEEP = "keep the run's value"


KEEP = Keep.KEEP


@dataclass(frozen=True)
class Choice:
    """An option taking one of ``choices`` (strings, booleans or numbers).

    ``otherwise`` is the value it takes where its condition fails, for a choice that other
    options constrain (Reptile's ``carry_moment`` needs Adam: with SGD it is False); by
    default (:data:`KEEP`) it keeps the run's value, as a range always does.
    """

    name: str
    choices: tuple[Any, ...]
    why: str
    when: When = field(default_factory=When)
    otherwise: Any = KEEP

    def check(self) -> None:
        ok = (isinstance(self.choices, tuple) and self.choices
              and all(isinstance(c, (str, bool, int, float)) for c in self.choices)
              and len(set(self.choices)) == len(self.choices))
        if not ok:
            raise ValueError(f"choices must be a non-empty list of distinct "
                             f"strings, booleans or numbers, got {brief([self.choices])}")

    def values(self) -> tuple[Any, ...]:
        return self.choices

    def suggest(self, trial) -> Any:
        return trial.suggest_categorical(self.name, list(self.choices))

    def describe(self) -> str:
        return " or ".join(json.dumps(c) for c in self.choices)


Entry = Float | Int | Choice
Space = tuple[Entry, ...]


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: The options every method shares. Centres are the MAML paper's sinusoid values (Adam's
#: 1e-3, meta-batch 25, one step of 0.01) and the Omniglot presets' (step 0.4 to 2.0 on the
#: mean loss, meta-batch 32); the ranges span both families.
SHARED: Space = (
    Float("outer_lr", 1e-4, 1e-2, log=True, when=When({"outer_optimizer": ("adam",)}),
          why="Adam's 1e-3 (MAML, Reptile, iMAML papers) at the centre, a decade either side"),
    Float("outer_lr", 0.05, 1.0, log=True, when=When({"outer_optimizer": ("sgd",)}),
          why="SGD's step is Reptile's ε: 1.0 in its Omniglot code, 0.1 in its sinusoid code"),
    Int("meta_batch", 4, 64, log=True,
        why="25 (MAML sinusoid) and 32 (MAML Omniglot) inside; below 4 the gradient is noise, "
            "above 64 a budget buys few updates"),
    Int("inner_steps", 1, 10,
        why="1 (MAML Omniglot) to 10 (the test steps of the sinusoid protocol)"),
    Float("inner_lr", 1e-3, 3.0, log=True,
          why="0.01 (MAML sinusoid) to 2.0 (FOMAML Omniglot on the mean loss), with room "
              "either side"),
)


def shared_without(*names: str) -> Space:
    """:data:`SHARED` less the entries for ``names`` (e.g. options a method does not take)."""
    return tuple(entry for entry in SHARED if entry.name not in names)


def replace_entries(space: Space, *entries: Entry) -> Space:
    """``space`` with each entry of the same name replaced by ``entries`` (added if absent)."""
    names = {entry.name for entry in entries}
    return tuple(entry for entry in space if entry.name not in names) + tuple(entries)
