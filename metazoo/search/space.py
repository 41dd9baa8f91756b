"""Search spaces: the options of a method worth searching, each with its range and why.

A space is a tuple of entries. An entry names one option (a run option such as ``outer_lr``,
or one of the method's own, such as iMAML's ``lam``), its range (:class:`Float`,
:class:`Int`) or choices (:class:`Choice`), an optional condition (:class:`When`: the entry
is searched only while other options take given values, e.g. iMAML's ``solver_cg_steps``
only with ``inner_solver`` "newton") and one line saying why the range is what it is.

Each method declares ``SPACE`` at the end of its own module; :data:`SHARED` is the space of
the options every method shares, from which those spaces are built. A user narrows or widens
a space from a JSON file (:func:`read_space_file`).
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
        if not (_number(self.low) and _number(self.high) and self.low <= self.high):
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
        if not (_integer(self.low) and _integer(self.high) and self.low <= self.high):
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


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
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


def space_for(algorithm: str) -> Space:
    """The space a method declares in its module (``SPACE``), or :data:`SHARED` for a method
    that declares none (one registered from elsewhere, such as a test's)."""
    try:
        module = importlib.import_module(f"metazoo.algorithms.{algorithm}")
    except ModuleNotFoundError:
        return SHARED
    return getattr(module, "SPACE", SHARED)


def resolve(space: Space, fixed: Mapping[str, Any]) -> Space:
    """The entries that apply under the run's fixed options ``fixed``: those whose condition
    names only options that are not searched are decided now; conditions on searched options
    are kept for sampling. Refuses two entries for one option that both apply."""
    searched = {entry.name for entry in space}
    kept: list[Entry] = []
    for entry in space:
        on_fixed = {name: allowed for name, allowed in entry.when.values.items()
                    if name not in searched}
        if not When(on_fixed).holds(fixed):
            continue
        kept.append(entry)
    names = [entry.name for entry in kept]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"the space has two entries for {brief(twice)} under the same "
                         "conditions; keep one")
    return tuple(kept)


def sample(trial, space: Space) -> dict[str, Any]:
    """One point of ``space`` drawn through an Optuna trial; an entry whose condition on
    other searched options fails is left out (the option keeps its run value)."""
    chosen: dict[str, Any] = {}
    pending = list(space)
    while pending:  # an entry waits for the entries its condition names
        ready = [entry for entry in pending
                 if not set(entry.when.values) & {other.name for other in pending}]
        if not ready:
            raise ValueError("the space's conditions form a cycle: "
                             + brief([entry.name for entry in pending]))
        for entry in ready:
            pending.remove(entry)
            searched = {name: allowed for name, allowed in entry.when.values.items()
                        if name in chosen or any(e.name == name for e in space)}
            if When(searched).holds(chosen):
                chosen[entry.name] = entry.suggest(trial)
    return chosen


def complete(space: Space, values: Mapping[str, Any], fixed: Mapping[str, Any]
             ) -> dict[str, Any]:
    """``values`` plus the ``otherwise`` value of each choice left out because its condition
    fails under ``values`` and the run's ``fixed`` options: the options a trial sets."""
    done = dict(values)
    for entry in space:
        applies = entry.when.holds({**fixed, **done})
        if (entry.name not in done and not applies and isinstance(entry, Choice)
                and entry.otherwise is not KEEP):
            done[entry.name] = entry.otherwise
    return done


def describe(space: Space) -> list[dict[str, Any]]:
    """The space as plain records (for the study's record and the report)."""
    return [{"name": entry.name, "kind": type(entry).__name__.lower(), "range": entry.describe(),
             "when": entry.when.describe(), "why": entry.why} for entry in space]


def to_json(space: Space) -> list[dict[str, Any]]:
    """The space as JSON-ready data that determines it exactly (a study stores it, so that
    the same command with another space is refused rather than mixed in)."""
    return [{"kind": type(entry).__name__, **{
        key: (dict(value.values) if isinstance(value, When) else value)
        for key, value in dataclasses.asdict(entry).items()
        if key != "why" and value is not KEEP}}
        for entry in space]


#: Keys a ``--space`` file entry may hold.
_KEYS = {"low", "high", "log", "choices", "when", "why"}


def read_space_file(path: str | Path, space: Space, options: Sequence[str]) -> Space:
    """``space`` narrowed or widened by the JSON file ``path``.

    The file is one object: ``{"<option>": entry or null}``. An entry is ``{"low": …, "high":
    …, "log": true|false}`` for a number, or ``{"choices": [...]}``, with an optional
    ``"when": {"<option>": [values]}``; keys left out keep those of the method's entry. ``null``
    drops the option from the space (it keeps its run value). An option outside the method's
    space may be added if it is one of ``options``.

    Raises:
        ValueError: one line naming the entry and the method's options.
    """
    where = f"--space {path}"
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{where}: cannot read it as JSON ({brief([str(error)], width=100)})"
                         ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object of option: entry, got "  # noqa: TRY004
                         f"{type(data).__name__}")
    listed = ", ".join(options)
    result = list(space)
    for name, given in data.items():
        if name not in options:
            raise ValueError(f"{where}: {brief([name], width=40)} is not an option of this "
                             f"method; its options are: {listed}")
        old = [entry for entry in result if entry.name == name]
        result = [entry for entry in result if entry.name != name]
        if given is None:
            continue
        if not isinstance(given, dict) or not given or set(given) - _KEYS:
            extra = sorted(set(given) - _KEYS) if isinstance(given, dict) else []
            raise ValueError(f"{where}: entry {name} must be an object with low, high and log, "
                             "or choices (and an optional when)"
                             + (f"; it has {brief(extra)}" if extra else "")
                             + f"; the method's options are: {listed}")
        try:
            entry = _entry(name, given, old[0] if len(old) == 1 else None)
            unknown = sorted(set(entry.when.values) - set(options))
            if unknown:
                raise ValueError(f"its condition names {brief(unknown, width=40)}, not an option")
            result.append(entry)
        except ValueError as error:
            raise ValueError(f"{where}: entry {name}: {error}; the method's options are: "
                             f"{listed}") from None
    return tuple(result)


def _entry(name: str, given: dict[str, Any], old: Entry | None) -> Entry:
    """One ``--space`` entry, keys left out taken from the method's own entry ``old``."""
    when = old.when if old is not None else When()
    if "when" in given:
        raw = given["when"]
        if not (isinstance(raw, dict) and all(isinstance(v, list) and v for v in raw.values())):
            raise ValueError('when must map options to lists of values, e.g. {"inner_solver": '
                             '["newton"]}')
        when = When({key: tuple(values) for key, values in raw.items()})
    why = str(given.get("why") or (old.why if old is not None else "set in the --space file"))
    if "choices" in given or (isinstance(old, Choice) and not {"low", "high"} & set(given)):
        if {"low", "high", "log"} & set(given):
            raise ValueError("give either choices or low and high, not both")
        choices = given.get("choices", old.choices if isinstance(old, Choice) else None)
        if not isinstance(choices, list | tuple):
            raise ValueError(f"choices must be a list, got {brief([choices])}")
        entry: Entry = Choice(name, tuple(choices), why, when=when)
    else:
        low = given.get("low", getattr(old, "low", None))
        high = given.get("high", getattr(old, "high", None))
        log = given.get("log", getattr(old, "log", False))
        if low is None or high is None:
            raise ValueError("a new entry needs low and high (or choices)")
        if not isinstance(log, bool):
            raise ValueError(f"log must be true or false, got {brief([log])}")
        integer = isinstance(old, Int) if old is not None else (_integer(low)
                                                                 and _integer(high))
        kind = Int if integer else Float
        entry = kind(name, low, high, why, log=log, when=when)
    entry.check()
    return entry


__all__ = ["KEEP", "RUN_OPTIONS", "SHARED", "Choice", "Entry", "Float", "Int", "Space", "When",
           "complete", "describe", "read_space_file", "replace_entries", "resolve", "sample",
           "shared_without", "space_for", "to_json"]
