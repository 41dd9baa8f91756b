"""Option fields and their checks, shared by every settings and config dataclass.

A settings class is a frozen dataclass whose fields are made by :func:`option` (a default and
a one-line description, which the command line turns into ``--help``). This module builds
and checks such classes from plain dicts: :func:`build` refuses unknown options with a
suggestion, :func:`stored` reads a stored run back as it was trained. It imports nothing of
metazoo beyond :mod:`metazoo.messages`, so any layer may use it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import field
from typing import Any, TypeVar

T = TypeVar("T")

#: ``option(absent=...)`` left unset: a stored run without the field used today's default.
_UNSET = object()


def option(default, help: str, *, formerly: str = "", absent: Any = _UNSET,
           kind: type | None = None):
    """A settings field with a one-line description (the CLI's ``--help`` reads it).

    Mutable defaults (lists, dicts) get a factory, so instances never share them.
    ``formerly`` is the field's previous name: stored runs and configs that use it still load.
    ``absent`` is the value a stored run that predates the field used, where that differs from
    today's default: a run is then read back as it was trained.
    ``kind`` is the type of the values of a field whose default is ``None`` ("not chosen": a
    value that :meth:`~metazoo.engine.config.TrainConfig.resolve` fills in).
    """
    if default is None and kind is None:
        raise TypeError("an option whose default is None needs its kind (kind=int, …)")
    metadata = {"help": help, "formerly": formerly}
    if kind is not None:
        metadata["kind"] = kind
    if absent is not _UNSET:
        metadata["absent"] = absent
    if isinstance(default, (list, tuple, dict)):
        kind = list if isinstance(default, tuple) else type(default)
        return field(default_factory=lambda: kind(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error never echoes a huge input."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def check_field_types(instance) -> None:
    """Raise a clear ``ValueError`` for any field whose value is not of its default's type
    (ints where ints are expected, numbers where floats are, lists of ints, …)."""
    for spec in dataclasses.fields(instance):
        if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            continue
        default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
        value = getattr(instance, spec.name)
        if default is None:
            if value is None:
                continue
            default = kind_of(spec)()
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
                             f"{short(value)} ({type(value).__name__})")


def kind_of(spec: dataclasses.Field) -> type:
    """The type of a field's values: its declared ``kind``, else its default's."""
    default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
    return spec.metadata.get("kind") or type(default)


def positive_int(name: str, value: Any, minimum: int = 1) -> None:
    """Raise a clear ``ValueError`` unless ``value`` is an integer ≥ ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {short(value)}")


def positive_float(name: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raise a clear ``ValueError`` unless ``value`` is a finite number > 0 (≥ 0 if allowed)."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and (value >= 0 if allow_zero else value > 0))
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, "
                         f"got {short(value)}")


def build(cls: type[T], options: dict[str, Any], owner: str) -> T:
    """``cls(**options)``, accepting former field names and refusing unknown ones with a
    suggestion, in one line that names ``owner`` (e.g. the algorithm) and its options."""
    fields = {spec.name: spec for spec in dataclasses.fields(cls)}
    renamed = {spec.metadata.get("formerly"): name for name, spec in fields.items()
               if spec.metadata.get("formerly")}
    given = {renamed.get(key, key): value for key, value in options.items()}
    unknown = sorted(set(given) - set(fields), key=str)
    if unknown:
        hints = []
        for key in unknown[:3]:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hints.append(f"{short(key, 40)}" + (f" (did you mean {close[0]}?)" if close else ""))
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise ValueError(f"{owner} takes no option {', '.join(hints)}{more}; its options "
                         f"are: {', '.join(fields)}")
    return cls(**given)


def stored(cls: type, options: dict[str, Any]) -> dict[str, Any]:
    """A stored run's options with each field it predates set to what it used then
    (``option(absent=...)``), not to today's default."""
    fields = dataclasses.fields(cls)
    given = set(options) | {spec.metadata.get("formerly") for spec in fields
                            if spec.metadata.get("formerly") in options}
    missing = {spec.name: spec.metadata["absent"] for spec in fields
               if "absent" in spec.metadata and spec.name not in given}
    return {**options, **missing}


def extra_fields(cls: type, base: type) -> dict[str, dataclasses.Field]:
    """The fields of ``cls`` beyond those of its base class ``base``."""
    shared = {spec.name for spec in dataclasses.fields(base)}
    return {spec.name: spec for spec in dataclasses.fields(cls) if spec.name not in shared}
