"""A run's options merged from where they come from, in order: the defaults (or a stored
run's config), a preset, a config file, the flags given; and the names an algorithm's options
go by there. One rule for another algorithm's options, wherever they come from: refused.

The command line only collects the sources (:func:`metazoo.cli.flags.config_from`); the
merge is the config's, so that a caller in Python merges the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from metazoo.algorithms import ALGORITHMS
from metazoo.engine.config import TrainConfig


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


#: argparse destinations of algorithm options: ``algorithm:<name>:<field>``.
ALGORITHM_DEST = "algorithm:"


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


def merged_config(*, stored: dict[str, Any] | None = None, preset: dict[str, Any] | None = None,
                  file: dict[str, Any] | None = None, given: dict[str, Any] | None = None
                  ) -> TrainConfig:
    """The config of ``stored`` (a run's, or the defaults), then ``preset``, then ``file``,
    then ``given``, each overriding the ones before.

    ``preset`` and ``file`` hold config fields, or an algorithm's options under a flag's
    spelling without the dashes (``imaml_cg_steps``, ``cg_steps``); ``given`` holds config
    fields and the flags' destinations of algorithm options (:func:`algorithm_flags`).

    Raises:
        ValueError: an unknown option, an option of another algorithm, an ill-formed
            ``algorithm_options``, or any value the config refuses.
    """
    given = dict(given or {})
    options: dict[str, Any] = dict(stored or {})
    options.update(preset or {})
    options.update(file or {})
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


__all__ = ["ALGORITHM_DEST", "algorithm_flags", "flag", "merged_config"]
