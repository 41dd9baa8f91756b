"""Flags from dataclasses: every field of :class:`~metazoo.engine.config.TrainConfig` and of
every registered algorithm's settings becomes an option, so a new option or algorithm needs no
edit here; and a run's options merged from a preset, a config file and the flags given.
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
from metazoo.options import kind_of
from metazoo.tasks import TASKS


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def field_default(spec: dataclasses.Field) -> Any:
    """A field's default as declared (a config is not built for ``--help``: its checks load
    the task families, and torch)."""
    return spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()


#: argparse destinations of algorithm options: ``algorithm:<name>:<field>``.
ALGORITHM_DEST = "algorithm:"


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


def algorithm_flags() -> dict[str, tuple[str, str, list[str]]]:
    """Every algorithm option's command-line spellings, in one place.

    Each option gets its own namespace, ``--<algorithm>-<field>`` (``--imaml-cg-steps``), so
    two algorithms may share a field name. The flag an option had before namespacing (from its
    field's former name, e.g. ``--imaml-lambda``, or its bare name, ``--cg-steps``) stays as an
    alias where it is unambiguous.

    Returns:
        ``{dest: (algorithm, field, [flags])}``.
    """
    found: dict[str, tuple[str, str, list[str]]] = {}
    old: dict[str, list[str]] = {}
    for name, algorithm in sorted(ALGORITHMS.items()):
        for field_name, spec in algorithm.options().items():
            dest = f"{ALGORITHM_DEST}{name}:{field_name}"
            found[dest] = (name, field_name, [flag(f"{name}_{field_name}")])
            old.setdefault(flag(spec.metadata.get("formerly") or field_name), []).append(dest)
    taken = {flag(spec.name) for spec in dataclasses.fields(TrainConfig)}
    for alias, dests in old.items():
        if len(dests) == 1 and alias not in taken and alias not in found[dests[0]][2]:
            found[dests[0]][2].append(alias)
    return found


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
    """Merge, in order: defaults (or a stored run's config), a config file, explicit flags.

    One rule for another algorithm's options, wherever they come from: refused.
    """
    given = {k: v for k, v in vars(args).items()
             if k not in ("command", "out", "config", "resume", "overwrite", "no_progress",
                          "preset")}
    options: dict[str, Any] = dict(stored or {})
    if getattr(args, "preset", None) is not None:  # an empty name is refused, not ignored
        from metazoo.presets import preset_options

        options.update(preset_options(args.preset))
    if args.config is not None:
        options.update(read_config(args.config))
    flags = algorithm_flags()
    by_alias = {flag.lstrip("-").replace("-", "_"): dest for dest, (_, _, spellings) in
                flags.items() for flag in spellings}
    # Algorithm options as flags, or as top-level keys of a config file in their flag spelling.
    chosen: dict[str, tuple[str, str, Any]] = {}
    for key in list(options):
        if key in by_alias:
            algorithm, field_name, _ = flags[by_alias[key]]
            chosen[flag(key)] = (algorithm, field_name, options.pop(key))
    options.update({k: v for k, v in given.items() if not k.startswith(ALGORITHM_DEST)})
    for key, value in given.items():
        if key.startswith(ALGORITHM_DEST):
            algorithm, field_name, spellings = flags[key]
            chosen[spellings[0]] = (algorithm, field_name, value)
    algorithm = options.get("algorithm", TrainConfig.algorithm)
    if stored and algorithm != stored.get("algorithm") and "algorithm_options" in stored \
            and options["algorithm_options"] is stored["algorithm_options"]:
        # The stored options are the stored algorithm's: another algorithm given on resume
        # is a difference to name (check_same_config), not an option of the wrong algorithm.
        options["algorithm_options"] = {}
    algorithm_options = options.get("algorithm_options", {})
    if not isinstance(algorithm_options, dict):
        raise ValueError(  # noqa: TRY004 - bad input, reported in one line (exit 2)
                         f"algorithm_options must be a JSON object, got {str(algorithm_options)[:80]}")
    algorithm_options = dict(algorithm_options)
    for spelling, (owner, field_name, value) in chosen.items():
        if owner != algorithm:
            raise ValueError(f"{spelling} is an option of {owner}, not of {algorithm} "
                             f"(--algorithm); drop it or use --algorithm {owner}")
        algorithm_options[field_name] = value
    options["algorithm_options"] = algorithm_options
    unknown = set(options) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        names = sorted(unknown)
        listed = ", ".join(name[:40] for name in names[:5])
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        raise ValueError(f"unknown option(s) in --config: {listed}{more}")
    return TrainConfig(**options)


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
