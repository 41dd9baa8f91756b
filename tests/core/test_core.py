"""The functional core: adapt, conjugate gradient, batching over tasks."""

import math

import pytest
import torch

from metazoo.core import adapt, proximal, rms, sgd
from metazoo.core.batch import mean_over_tasks
from metazoo.core.linalg import conjugate_gradient
from metazoo.tasks import make_task
from tests.helpers import double_mlp, sinusoid_batch


def test_adapt_zero_steps_returns_params_and_empty_path():
    _, loss, params = double_mlp()
    task = sinusoid_batch(1).task(0)
    result = adapt(loss, params, task.support_x, task.support_y, 0, sgd(0.1), record=True)
    assert all(result.params[n] is params[n] for n in params)
    assert result.losses.numel() == 0 and result.grad_norms.numel() == 0


def test_adapt_is_plain_sgd_and_records_the_path():
    _, loss, params = double_mlp()
    task = sinusoid_batch(1).task(0)
    result = adapt(loss, params, task.support_x, task.support_y, 3, sgd(0.05), record=True)
    current, losses, norms = dict(params), [], []
    for _ in range(3):  # the reference: explicit autograd on leaf tensors
        leaves = {n: p.clone().requires_grad_(True) for n, p in current.items()}
        value = loss(leaves, task.support_x, task.support_y)
        grads = torch.autograd.grad(value, list(leaves.values()))
        losses.append(value.item())
        norms.append(math.sqrt(sum((g ** 2).sum().item() for g in grads)))
        current = {n: current[n] - 0.05 * g for n, g in zip(leaves, grads)}
    for name in params:
        torch.testing.assert_close(result.params[name], current[name])
    torch.testing.assert_close(result.losses, torch.tensor(losses, dtype=torch.float64))
    torch.testing.assert_close(result.grad_norms, torch.tensor(norms, dtype=torch.float64))
    assert result.losses[-1] < result.losses[0]
    # Without record, the losses (a by-product) still come back; the rest does not.
    plain = adapt(loss, params, task.support_x, task.support_y, 3, sgd(0.05))
    torch.testing.assert_close(plain.losses, result.losses, rtol=0, atol=0)
    assert plain.grad_norms is None and plain.gradients is None


def test_adapt_proximal_term_and_per_parameter_lr():
    _, loss, params = double_mlp()
    task = sinusoid_batch(1).task(0)
    anchor = {n: torch.zeros_like(p) for n, p in params.items()}
    lr = {n: torch.full_like(p, 0.02) for n, p in params.items()}
    result = adapt(proximal(loss, anchor, 3.0), params, task.support_x, task.support_y, 1,
                   sgd(lr)).params
    grads = torch.func.grad(loss)(params, task.support_x, task.support_y)
    for name in params:
        expected = params[name] - 0.02 * (grads[name] + 3.0 * params[name])
        torch.testing.assert_close(result[name], expected)


def test_adapt_rejects_bad_arguments():
    _, loss, params = double_mlp()
    task = sinusoid_batch(1).task(0)
    with pytest.raises(ValueError, match="inner steps must be >= 0"):
        adapt(loss, params, task.support_x, task.support_y, -1, sgd(0.1))
    with pytest.raises(ValueError, match="regularization"):
        proximal(loss, params, -1.0)


def test_conjugate_gradient_solves_spd_system():
    generator = torch.Generator().manual_seed(0)
    factor = torch.randn(6, 6, generator=generator, dtype=torch.float64)
    matrix = factor @ factor.T + 0.5 * torch.eye(6, dtype=torch.float64)
    rhs = torch.randn(6, generator=generator, dtype=torch.float64)
    # split the vector across two "parameters" to exercise the dict arithmetic
    solution, residual = conjugate_gradient(
        lambda v: dict(zip("ab", (matrix @ torch.cat([v["a"], v["b"]])).split([2, 4]))),
        {"a": rhs[:2], "b": rhs[2:]}, steps=6)
    torch.testing.assert_close(torch.cat([solution["a"], solution["b"]]),
                               torch.linalg.solve(matrix, rhs), rtol=1e-8, atol=1e-10)
    assert residual < 1e-8


def test_conjugate_gradient_zero_rhs_gives_zero_not_nan():
    solution, residual = conjugate_gradient(lambda v: {"a": 2 * v["a"]},
                                            {"a": torch.zeros(3, dtype=torch.float64)}, steps=4)
    assert torch.equal(solution["a"], torch.zeros(3, dtype=torch.float64)) and residual == 0


def test_unknown_task_and_strategy():
    with pytest.raises(ValueError, match="unknown task 'cifar'.*choose one of"):
        make_task("cifar")
    with pytest.raises(ValueError, match="unknown strategy"):
        mean_over_tasks(lambda t: ({}, {}), sinusoid_batch(2), strategy="threads")
    with pytest.raises(ValueError, match="chunk_size"):
        mean_over_tasks(lambda t: ({}, {}), sinusoid_batch(2), chunk_size=0)


def test_adam_without_momentum_in_mini_batches_matches_torch_optim():
    """adapt's Adam(β1 = 0) over mini-batches is torch.optim.Adam(betas=(0, β2)) on the same
    batches, step by step (Reptile's inner optimizer)."""
    _, loss, params = double_mlp()
    task = sinusoid_batch(num_tasks=1, k_shot=10).task(0)
    result = adapt(loss, params, task.support_x, task.support_y, 7, rms(0.01, 0.99),
                   batch_size=4, keep=[0, 3, 7])
    weights = {n: p.clone().requires_grad_() for n, p in params.items()}
    optimizer = torch.optim.Adam(weights.values(), lr=0.01, betas=(0.0, 0.99), eps=1e-8)
    x, y = task.support_x, task.support_y
    for step in range(7):
        index = (torch.arange(4) + 4 * step) % 10  # consecutive batches, cycling
        optimizer.zero_grad()
        loss(weights, x[index], y[index]).backward()
        optimizer.step()
        if step == 2:
            for name in params:
                torch.testing.assert_close(result.iterates[1][name], weights[name].detach(),
                                           rtol=1e-10, atol=1e-12)
    for name in params:
        torch.testing.assert_close(result.params[name], weights[name].detach(), rtol=1e-10,
                                   atol=1e-12)
        assert torch.equal(result.iterates[2][name], result.params[name])
        assert torch.equal(result.iterates[0][name], params[name])


def test_adapt_carries_adam_state_from_one_call_to_the_next():
    # Adam's state carried across calls: 3 steps, then 4 more from the returned moment, is
    # one torch Adam (β1 = 0) over 7 steps whose state outlives the first call, while the
    # weights restart where the caller says (here: where the first call left them).
    _, loss, params = double_mlp()
    task = sinusoid_batch(num_tasks=1, k_shot=10).task(0)
    x, y = task.support_x, task.support_y
    first = adapt(loss, params, x, y, 3, rms(0.01, 0.99), batch_size=4)
    assert first.state.count == 3
    second = adapt(loss, first.params, x[[2, 3, 4, 5, 6, 7, 8, 9, 0, 1]],
                   y[[2, 3, 4, 5, 6, 7, 8, 9, 0, 1]], 4, rms(0.01, 0.99), batch_size=4,
                   state=first.state)
    weights = {n: p.clone().requires_grad_() for n, p in params.items()}
    optimizer = torch.optim.Adam(weights.values(), lr=0.01, betas=(0.0, 0.99), eps=1e-8)
    for step in range(7):
        index = (torch.arange(4) + 4 * step) % 10  # the same consecutive batches
        optimizer.zero_grad()
        loss(weights, x[index], y[index]).backward()
        optimizer.step()
    for name in params:
        torch.testing.assert_close(second.params[name], weights[name].detach(), rtol=1e-10,
                                   atol=1e-12)
        torch.testing.assert_close(second.state.second[name], optimizer.state[weights[name]]
                                   ["exp_avg_sq"], rtol=1e-10, atol=1e-14)
    # Without a carried state the second call starts afresh, and differs.
    fresh = adapt(loss, first.params, x, y, 4, rms(0.01, 0.99), batch_size=4)
    assert not all(torch.allclose(fresh.params[n], second.params[n]) for n in params)


def test_adapt_refuses_a_task_without_examples():
    _, loss, params = double_mlp()
    empty = torch.zeros(0, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="no examples"):
        adapt(loss, params, empty, empty, 1, sgd(0.1))
