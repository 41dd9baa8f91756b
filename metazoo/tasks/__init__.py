"""Task distributions: a name → factory registry and the ``TaskBatch`` they sample.

The families' modules load torch (some also pandas or Pillow). Each is imported on first use:
a family when its factory is looked up in :data:`TASKS`, a class when it is imported from
here. Listing the names (the command line's ``--task`` choices) loads none of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from metazoo.lazy import lazy_names

if TYPE_CHECKING:
    from metazoo.tasks.base import TaskDistribution


class _Registry(MutableMapping):
    """name → factory; a built-in factory is named ``module:attribute`` (a module of this
    package) until it is first looked up."""

    def __init__(self, entries: Mapping[str, Any]) -> None:
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> Callable[..., TaskDistribution]:
        factory = self._entries[name]
        if isinstance(factory, str):
            module, _, attribute = factory.partition(":")
            factory = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
            self._entries[name] = factory
        return factory

    def __setitem__(self, name: str, factory: Callable[..., TaskDistribution]) -> None:
        self._entries[name] = factory

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"TASKS({', '.join(self._entries)})"


#: name → factory(**options) returning a task distribution. Later task families register here.
TASKS: MutableMapping[str, Callable[..., TaskDistribution]] = _Registry({
    "sinusoid": "sinusoid:Sinusoid",
    "linear": "linear:LinearRegression",
    "omniglot": "omniglot:Omniglot",
    "air-quality": "air_quality:AirQuality",
    "folder": "folder:ImageFolderTasks",
    "faces": "folder:Faces",
    "mini-imagenet": "mini_imagenet:MiniImageNet",
    "arrays": "arrays:array_tasks",
})

#: Each class or function importable from here → the module of this package that defines it.
_HOMES = {"AirQuality": "air_quality", "ArrayTasks": "arrays", "array_tasks": "arrays",
          "DataError": "base", "TaskBatch": "base", "TaskDistribution": "base",
          "DrawsIndices": "base", "draws_indices": "base", "sample_batches": "base",
          "Faces": "folder", "ImageFolderTasks": "folder", "LinearRegression": "linear",
          "MiniImageNet": "mini_imagenet", "Omniglot": "omniglot", "ClassData": "sampler",
          "FewShotSampling": "sampler", "Sinusoid": "sinusoid"}


__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())


def make_task(name: str, **options: Any) -> TaskDistribution:
    """Build the task distribution registered as ``name``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(sorted(TASKS))}")
    return TASKS[name](**options)


__all__ = [
    "TASKS",
    "AirQuality",
    "ArrayTasks",
    "ClassData",
    "DataError",
    "DrawsIndices",
    "Faces",
    "FewShotSampling",
    "ImageFolderTasks",
    "LinearRegression",
    "MiniImageNet",
    "Omniglot",
    "Sinusoid",
    "TaskBatch",
    "TaskDistribution",
    "array_tasks",
    "draws_indices",
    "make_task",
    "sample_batches",
]
