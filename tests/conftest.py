import pytest
import torch

from metazoo.models import MLP, initial_params, make_loss
from metazoo.tasks import LinearRegression, Sinusoid


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)


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
