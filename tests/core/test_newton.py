"""Newton–CG on the proximal inner problem (iMAML's Hessian-free solver) and the trust-region
conjugate gradient it uses, against closed forms and their defining properties."""

import numpy as np
import pytest
import torch

from metazoo.core import adapt, proximal, sgd
from metazoo.core.batch import map_tasks
from metazoo.core.linalg import steihaug_conjugate_gradient
from metazoo.core.newton import newton
from tests.helpers import double_mlp, sinusoid_batch


def matrix_operator(matrix: torch.Tensor):
    return lambda v: {"x": matrix @ v["x"]}


def model(matrix, rhs, x):
    """The quadratic model ½ xᵀAx − bᵀx that Steihaug's CG decreases."""
    return 0.5 * x @ matrix @ x - rhs @ x


def test_steihaug_is_conjugate_gradient_inside_the_trust_region():
    torch.manual_seed(0)
    factor = torch.randn(5, 5, dtype=torch.float64)
    matrix = factor @ factor.T + torch.eye(5, dtype=torch.float64)
    rhs = torch.randn(5, dtype=torch.float64)
    solution = steihaug_conjugate_gradient(matrix_operator(matrix), {"x": rhs}, 5,
                                           radius=torch.tensor(1e6, dtype=torch.float64))
    torch.testing.assert_close(solution["x"], torch.linalg.solve(matrix, rhs), rtol=1e-9,
                               atol=1e-10)


def test_steihaug_stops_on_the_boundary_for_negative_curvature_and_long_steps():
    torch.manual_seed(1)
    basis, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    indefinite = basis @ torch.diag(torch.tensor([-3.0, -0.5, 0.1, 1.0, 2.0, 5.0],
                                                 dtype=torch.float64)) @ basis.T
    rhs = torch.randn(6, dtype=torch.float64)
    for radius in (0.05, 1.0, 10.0):
        bound = torch.tensor(radius, dtype=torch.float64)
        x = steihaug_conjugate_gradient(matrix_operator(indefinite), {"x": rhs}, 6, bound)["x"]
        # A model of negative curvature is unbounded below: the solve ends on the boundary.
        assert x.norm().item() == pytest.approx(radius, rel=1e-9)
        assert model(indefinite, rhs, x) < 0  # below the model's value at 0
        assert rhs @ x > 0  # downhill for the objective whose negative gradient is rhs
    # Positive definite, but the Newton step is longer than the radius: clipped to it.
    spd = basis @ torch.diag(torch.tensor([0.01, 1.0, 1.0, 2.0, 3.0, 4.0],
                                          dtype=torch.float64)) @ basis.T
    x = steihaug_conjugate_gradient(matrix_operator(spd), {"x": rhs}, 6,
                                    torch.tensor(0.5, dtype=torch.float64))["x"]
    assert x.norm().item() == pytest.approx(0.5, rel=1e-9)
    assert torch.linalg.solve(spd, rhs).norm() > 0.5


def test_one_newton_step_solves_a_quadratic_proximal_problem():
    torch.manual_seed(2)
    x = torch.randn(12, 3, dtype=torch.float64)
    y = torch.randn(12, dtype=torch.float64)

    def loss(params, inputs, targets):
        return ((inputs @ params["w"] - targets) ** 2).mean()

    theta = {"w": torch.randn(3, dtype=torch.float64)}
    for lam in (0.5, 2.0, 10.0):
        phi = newton(loss, theta, x, y, 1, lam, cg_steps=3).params["w"]
        a = 2 * x.T @ x / 12 + lam * torch.eye(3, dtype=torch.float64)
        b = 2 * x.T @ y / 12 + lam * theta["w"]
        torch.testing.assert_close(phi, torch.linalg.solve(a, b), rtol=1e-10, atol=1e-12)


def test_newton_never_increases_the_objective_and_nears_the_proximal_solution():
    """On a non-convex net: the line search keeps every step downhill, and 10 Newton steps
    come within 1% of the objective that 3,000 small gradient steps reach."""
    _, loss, params = double_mlp()
    task = sinusoid_batch(num_tasks=1).task(0)
    lam = 10.0
    path = newton(loss, params, task.support_x, task.support_y, 10, lam, cg_steps=5,
                  keep=[0, 10])
    losses = path.losses.numpy()
    assert np.all(np.diff(losses) <= 1e-12)
    reference = adapt(proximal(loss, params, lam), params, task.support_x, task.support_y, 3000,
                      sgd(0.002)).losses[-1].item()

    def objective(phi):
        return (loss(phi, task.support_x, task.support_y)
                + 0.5 * lam * sum(((phi[n] - params[n]) ** 2).sum() for n in phi)).item()

    assert objective(path.params) < losses[0]
    assert objective(path.params) == pytest.approx(reference, rel=1e-2)
    assert all(torch.equal(path.iterates[0][n], params[n]) for n in params)
    assert all(torch.equal(path.iterates[1][n], path.params[n]) for n in params)


def test_newton_vmaps_over_tasks():
    _, loss, params = double_mlp()
    batch = sinusoid_batch(num_tasks=3)

    def adapted(task):
        phi = newton(loss, params, task.support_x, task.support_y, 3, 5.0).params
        return loss(phi, task.query_x, task.query_y)

    torch.testing.assert_close(map_tasks(adapted, batch, strategy="vmap"),
                               map_tasks(adapted, batch, strategy="loop"), rtol=1e-9, atol=1e-12)


def test_newton_refuses_bad_arguments():
    _, loss, params = double_mlp()
    task = sinusoid_batch(num_tasks=1).task(0)
    with pytest.raises(ValueError, match="proximal strength > 0"):
        newton(loss, params, task.support_x, task.support_y, 1, 0.0)
    with pytest.raises(ValueError, match=">= 0"):
        newton(loss, params, task.support_x, task.support_y, -1, 1.0)
