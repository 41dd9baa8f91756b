"""The synthetic regression families: sinusoid (MAML's protocol) and linear regression."""

import math

import pytest
import torch

from metazoo.tasks import LinearRegression, Sinusoid


def test_sinusoid_follows_the_maml_protocol():
    batch = Sinusoid(k_shot=10, query_shots=20).sample(500, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (500, 10, 1) and batch.query_y.shape == (500, 20, 1)
    x = torch.cat([batch.support_x, batch.query_x], 1)
    y = torch.cat([batch.support_y, batch.query_y], 1)
    assert x.min() >= -5 and x.max() <= 5 and x.min() < -4.9 and x.max() > 4.9
    # Recover each task's amplitude and phase by least squares on y = a sin x + c cos x.
    design = torch.cat([torch.sin(x), torch.cos(x)], -1)  # [T, N, 2]
    coef = torch.linalg.lstsq(design, y).solution[..., 0]  # [T, 2]
    amplitude = coef.norm(dim=-1)
    phase = torch.atan2(-coef[:, 1], coef[:, 0])  # y = A sin(x − b) ⇒ a = A cos b, c = −A sin b
    assert amplitude.min() >= 0.1 - 1e-4 and amplitude.max() <= 5 + 1e-4
    assert phase.min() >= -1e-4 and phase.max() <= math.pi + 1e-4
    assert 2.3 < amplitude.mean() < 2.8  # U[0.1, 5] has mean 2.55

def test_samplers_are_seeded_and_use_no_global_rng():
    for task in (Sinusoid(), LinearRegression(dim=3)):
        torch.manual_seed(0)
        first = task.sample(4, torch.Generator().manual_seed(7))
        torch.manual_seed(99)
        second = task.sample(4, torch.Generator().manual_seed(7))
        third = task.sample(4, torch.Generator().manual_seed(8))
        assert all(torch.equal(a, b) for a, b in zip(first, second))
        assert not torch.equal(first.support_x, third.support_x)

def test_linear_tasks_are_linear():
    batch = LinearRegression(dim=4, k_shot=8, query_shots=3).sample(
        5, torch.Generator().manual_seed(0))
    weights = torch.linalg.lstsq(batch.support_x, batch.support_y).solution  # [T, 4, 1]
    torch.testing.assert_close(batch.query_x @ weights, batch.query_y, rtol=1e-4, atol=1e-4)

@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_task_counts_are_validated(bad):
    with pytest.raises(ValueError, match="positive integer"):
        Sinusoid(k_shot=bad)
    with pytest.raises(ValueError, match="positive integer"):
        Sinusoid().sample(bad, torch.Generator())
