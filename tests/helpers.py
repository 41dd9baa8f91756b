"""Helpers the test files share, and the repository's paths, so a test file reads the same
wherever it sits under tests/."""

import json
from pathlib import Path

import torch

from metazoo.models import MLP, initial_params, make_loss
from metazoo.tasks import LinearRegression, Sinusoid

REPO = Path(__file__).resolve().parent.parent
# Real data sets live beside the repository, never in it (each test also reads an environment
# variable that overrides this).
SHARED_DATA = REPO.parent / "shared" / "data"


def double_mlp(seed: int = 0):
    """The sinusoid MLP in float64, with a seeded init, as (model, loss, params)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLP().double()
    return model, make_loss(model), initial_params(model)


def sinusoid_batch(num_tasks: int = 4, seed: int = 0, k_shot: int = 10, dtype=torch.float64):
    return Sinusoid(k_shot=k_shot, query_shots=7).sample(
        num_tasks, torch.Generator().manual_seed(seed)).to("cpu", dtype)


def linear_batch(num_tasks: int = 3, dim: int = 3, seed: int = 0, k_shot: int = 6):
    task = LinearRegression(dim=dim, k_shot=k_shot, query_shots=5, noise=0.1)
    return task.sample(num_tasks, torch.Generator().manual_seed(seed)).to("cpu", torch.float64)


def read_state(run_dir):
    """The raw dict of a run's checkpoint (loaded as data only)."""
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)


def rewrite_run(run_dir, state, **config_changes):
    """Save ``state`` as the run's checkpoint, with ``config_changes`` applied to its stored
    config and to the folder's config.json alike (as if the run had been started so)."""
    state["config"].update(config_changes)
    torch.save(state, run_dir / "checkpoint.pt")
    written = json.loads((run_dir / "config.json").read_text())
    written.update(config_changes)
    (run_dir / "config.json").write_text(json.dumps(written))


def task_gradient(name, loss, params, task, **options):
    """The registered method ``name``'s meta-gradient and statistics for one task, from the
    model's parameters ``params`` (its settings built from ``options``)."""
    from metazoo.algorithms import make_method

    method = make_method(name, **options)
    meta, state = method.init(params)
    gradient, stats, _ = method.meta_gradient(loss, meta, state, task)
    return gradient, stats
