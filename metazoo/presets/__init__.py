"""Published protocols as data: named presets, each value with its source.

A preset is a JSON file in this folder: ``description``, ``options`` (any ``metazoo train``
option by field name, the algorithm's own under ``algorithm_options``) and ``sources``, which
names, for every option, the paper table or the file and line of the reference code it comes
from (or says that it is metazoo's own choice, e.g. for evaluation sizes). ``metazoo train
--preset NAME`` starts from it; a config file and flags override it.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def preset_names() -> list[str]:
    """The names of the shipped presets."""
    return sorted(entry.name[:-5] for entry in resources.files(__name__).iterdir()
                  if entry.name.endswith(".json"))


def read_preset(name: str) -> dict[str, Any]:
    """The whole preset file ``name`` (description, options, sources)."""
    if name not in preset_names():
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(preset_names())} "
                         "(metazoo presets lists them)")
    return json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text())


def preset_options(name: str) -> dict[str, Any]:
    """The options of preset ``name``, ready for :class:`~metazoo.engine.config.TrainConfig`."""
    return dict(read_preset(name)["options"])
