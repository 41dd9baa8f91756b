"""Searching a method's space: its entries under a run's fixed options, sampled through an
Optuna trial, completed, described, and read from a user's file. The entries themselves are
:mod:`metazoo.space`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from metazoo.algorithms import ALGORITHMS
from metazoo.messages import brief
from metazoo.space import (
    KEEP,
    RUN_OPTIONS,
    SHARED,
    Choice,
    Entry,
    Float,
    Int,
    Keep,
    Space,
    When,
    is_integer,
    is_number,
    replace_entries,
    shared_without,
)

__all__ = ["KEEP", "RUN_OPTIONS", "SHARED", "Choice", "Entry", "Float", "Int", "Keep", "Space",
           "When", "complete", "describe", "read_space_file", "replace_entries", "resolve",
           "sample", "shared_without", "space_for", "starting_point", "to_json"]


def space_for(algorithm: str) -> Space:
    """The space the method registered with its entry (:data:`SHARED` unless it declares
    its own)."""
    return ALGORITHMS[algorithm].space


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


def starting_point(space: Space, values: Mapping[str, Any]) -> dict[str, Any]:
    """The point of ``space`` that the run's own ``values`` (its defaults or preset) take:
    each entry that applies under them, where their value lies inside its range. A study
    tries it first, so that its best is never one that the defaults beat on validation."""
    point: dict[str, Any] = {}
    for entry in space:
        value = values.get(entry.name)
        if entry.name in point or not entry.when.holds(values):
            continue
        if isinstance(entry, Choice):
            inside = value in entry.choices
        else:
            inside = (is_integer(value) if isinstance(entry, Int) else is_number(value)) \
                and entry.low <= value <= entry.high
        if inside:
            point[entry.name] = value
    return point


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
        integer = isinstance(old, Int) if old is not None else (is_integer(low)
                                                                 and is_integer(high))
        kind = Int if integer else Float
        entry = kind(name, low, high, why, log=log, when=when)
    entry.check()
    return entry
