"""Task distributions: a name → factory registry and the ``TaskBatch`` they sample."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from metazoo.tasks.air_quality import AirQuality
from metazoo.tasks.arrays import ArrayTasks, array_tasks
from metazoo.tasks.base import (
    DataError,
    DrawsIndices,
    TaskBatch,
    TaskDistribution,
    draws_indices,
    sample_batches,
)
from metazoo.tasks.folder import Faces, ImageFolderTasks
from metazoo.tasks.linear import LinearRegression
from metazoo.tasks.mini_imagenet import MiniImageNet
from metazoo.tasks.omniglot import Omniglot
from metazoo.tasks.sampler import ClassData, FewShotSampling
from metazoo.tasks.sinusoid import Sinusoid

#: name → factory(**options) returning a task distribution. Later task families register here.
TASKS: dict[str, Callable[..., TaskDistribution]] = {
    "sinusoid": Sinusoid,
    "linear": LinearRegression,
    "omniglot": Omniglot,
    "air-quality": AirQuality,
    "folder": ImageFolderTasks,
    "faces": Faces,
    "mini-imagenet": MiniImageNet,
    "arrays": array_tasks,
}


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
