"""Flags from dataclasses: every field of :class:`~metazoo.engine.config.TrainConfig` and of
every registered algorithm's settings becomes an option, so a new option or algorithm needs no
edit here; and the sources of a run's options collected for :mod:`metazoo.engine.merge`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metazoo.algorithms import ALGORITHMS
from metazoo.engine.config import TrainConfig
from metazoo.engine.merge import algorithm_flags, flag, merged_config
from metazoo.options import kind_of
from metazoo.tasks import TASKS


def field_default(spec: dataclasses.Field) -> Any:
    """A field's default as declared (a config is not built for ``--help``: its checks load
    the task families, and torch)."""
    return spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()


def add_field(parser: argparse.ArgumentParser, spec: dataclasses.Field, default: Any,
               flags: Sequence[str] | None = None, dest: str | None = None) -> None:
    # A default of None ("not chosen") is explained by the help text itself.
    help_text = spec.metadata.get("help", "") + ("" if default is None else
                                                 f" (default: {default!r})")
    flags = list(flags or [flag(spec.name)])
    common: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text}
    if dest is not None:
        common["dest"] = dest
    if isinstance(default, bool):
        parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
    elif isinstance(default, dict):
        parser.add_argument(*flags, type=json_object, metavar="JSON", **common)
    elif isinstance(default, list):
        kind = type(default[0]) if default else spec.metadata.get("items", int)
        parser.add_argument(*flags, type=kind, nargs="+", metavar="X", **common)
    else:
        if dest is not None:
            common["metavar"] = spec.name.upper()
        if spec.name == "algorithm":
            common["choices"] = sorted(ALGORITHMS)
        elif spec.name == "task":
            common["choices"] = sorted(TASKS)
        parser.add_argument(*flags, type=kind_of(spec), **common)


def path_argument(text: str) -> Path:
    """A path argument; an empty one would silently mean the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; name a file or folder")
    return Path(text)


def json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error}); write e.g. '{{\"cg_steps\": 5}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"cg_steps\": 5}}', got {text[:80]!r}")
    return value


def describe_field(message: str) -> str:
    """Add the flag to an error that starts with an option's field name (``outer_lr must…``).

    Errors below the command line name fields; only here do they meet their flags.
    """
    head = message.split(" ", 1)[0]
    names = {spec.name for spec in dataclasses.fields(TrainConfig)}
    if head in names and flag(head) not in message:
        return f"{message} ({flag(head)})"
    spellings = [flags[0] for algorithm, field_name, flags in algorithm_flags().values()
                 if field_name == head]
    if spellings and not any(flag in message for flag in spellings):
        return f"{message} ({' or '.join(spellings)})"
    return message


def config_from(args: argparse.Namespace, stored: dict[str, Any] | None = None) -> TrainConfig:
    """The run's config from parsed ``args``: defaults (or a stored run's config), then
    ``--preset``, then ``--config``, then the flags given (:func:`merged_config`)."""
    given = {k: v for k, v in vars(args).items()
             if k not in ("command", "out", "config", "resume", "overwrite", "no_progress",
                          "preset")}
    preset = None
    if getattr(args, "preset", None) is not None:  # an empty name is refused, not ignored
        from metazoo.presets import preset_options

        preset = preset_options(args.preset)
    file = read_config(args.config) if args.config is not None else None
    return merged_config(stored=stored, preset=preset, file=file, given=given)


#: The most a count option takes (what a 64-bit integer holds with room to spare).
MAX_COUNT = 2**62


def check_counts(settings: type, options: dict[str, Any]) -> None:
    """Every count has a bound that its message states: an integer option of ``settings``
    (a dataclass) whose default is 0 or more is a count, from 0 to :data:`MAX_COUNT`. The
    settings' own checks (e.g. at least 1) come after.

    Raises:
        ValueError: naming the option, its bound and the value.
    """
    for spec in dataclasses.fields(settings):
        default = spec.default
        if spec.name not in options or isinstance(default, bool) or not isinstance(default, int) \
                or default < 0:
            continue
        value = options[spec.name]
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= MAX_COUNT:
            shown = str(value) if len(str(value)) <= 20 else f"{str(value)[:19]}…"
            raise ValueError(f"{spec.name} must be an integer from 0 to 2**62, got {shown} "
                             f"({flag(spec.name)})")


def read_config(path: Path) -> dict[str, Any]:
    """A ``--config`` file: one JSON object of options."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"--config {path}: cannot read it as JSON ({str(error)[:120]})") from error
    if not isinstance(data, dict):
        raise ValueError(  # noqa: TRY004 - bad input, reported in one line (exit 2)
                         f"--config {path}: expected a JSON object of options, got "
                         f"{type(data).__name__}")
    return data
