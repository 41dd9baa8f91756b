"""Shared pieces of the search tests: tiny sinusoid studies, a method of the tests' own whose
θ never moves (a flat validation curve), and a task family that records which parts of its
split are read."""

import json
from dataclasses import dataclass

import pytest
import torch

from metazoo.algorithms import Algorithm, Method, Settings, register, unregister
from metazoo.algorithms.base import model_itself, plain_init, sgd_adapt
from metazoo.cli import main
from metazoo.tasks import TASKS, Sinusoid

#: A study of seconds: 40 meta-iterations a trial, a validation point every 20 on 5 tasks.
TINY = ["--task", "sinusoid", "--iterations", "40", "--val-every", "20", "--val-tasks", "5",
        "--eval-tasks", "5", "--trial-budget", "60", "--no-report"]

STILL = "still-test"
PARTED = "parted-test"


def tune(tmp_path, *options, out="study"):
    """``metazoo tune`` in this process; returns its exit status."""
    return main(["tune", *TINY, "--out", str(tmp_path / out), *options])


def space_file(tmp_path, entries, name="space.json"):
    path = tmp_path / name
    path.write_text(json.dumps(entries))
    return str(path)


@dataclass(frozen=True)
class StillSettings(Settings):
    """No settings beyond the inner loop's."""


def still(settings: StillSettings) -> Method:
    """A meta-gradient of zero: θ stays θ₀, so every validation point is the same."""

    def meta_gradient(loss, params, state, task):
        return ({name: torch.zeros_like(p) for name, p in params.items()},
                {"loss": loss(params, task.query_x, task.query_y).detach()}, state)

    return Method(STILL, settings, plain_init, meta_gradient, sgd_adapt(settings), model_itself)


@pytest.fixture
def still_method():
    register(Algorithm(STILL, "θ never moves (tests)", StillSettings, still))
    yield STILL
    unregister(STILL)


#: (event, part) for every construction and sample of the recording task family.
READS: list[tuple[str, str]] = []


@dataclass(frozen=True)
class PartedSinusoid(Sinusoid):
    """Sinusoid tasks under a train/val/test split that record which part is read."""

    part: str = "train"

    def __post_init__(self) -> None:
        super().__post_init__()
        READS.append(("built", self.part))

    def sample(self, num_tasks, generator):
        READS.append(("sampled", self.part))
        return super().sample(num_tasks, generator)


@pytest.fixture
def parted_task():
    READS.clear()
    TASKS[PARTED] = PartedSinusoid
    yield PARTED
    TASKS.pop(PARTED, None)


def tree(path):
    """Every file under ``path`` (nothing written: an empty list, or the folder absent)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []



