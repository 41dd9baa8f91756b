"""Meta-gradients against closed forms on linear regression (quadratic losses), in float64.

For a linear model with parameters w (bias folded in as a constant input of 1) and mean
squared error on n points, L(w) = ‖Xw − y‖²/n, ∇L = A w − b with A = 2XᵀX/n, b = 2Xᵀy/n.
"""

import numpy as np
import pytest
import torch

from metazoo.algorithms import make_method
from metazoo.models import make_loss
from metazoo.types import TaskBatch
from tests.helpers import linear_batch, task_gradient


def linear_model(dim: int, seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torch.nn.Linear(dim, 1).double()
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    return model, make_loss(model), params


def quadratic(x: torch.Tensor, y: torch.Tensor):
    """(A, b) of the MSE of a linear model with a bias, as float64 numpy arrays."""
    design = np.concatenate([x.numpy(), np.ones((x.shape[0], 1))], axis=1)  # [n, D+1]
    n = design.shape[0]
    return 2 * design.T @ design / n, 2 * design.T @ y.numpy()[:, 0] / n


def flat(params) -> np.ndarray:
    """[weight..., bias] as one vector, matching ``quadratic``'s layout."""
    return np.concatenate([params["weight"].numpy().ravel(), params["bias"].numpy()])


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5])
def test_maml_equals_closed_form(steps):
    dim, alpha = 3, 0.05
    _model, loss, params = linear_model(dim)
    batch = linear_batch(num_tasks=3, dim=dim)
    for index in range(batch.num_tasks):
        task = batch.task(index)
        support_a, support_b = quadratic(task.support_x, task.support_y)
        query_a, query_b = quadratic(task.query_x, task.query_y)
        theta = flat(params)
        phi = theta.copy()
        for _ in range(steps):
            phi = phi - alpha * (support_a @ phi - support_b)
        # dφ/dθ = (I − αA)^k, symmetric, so the meta-gradient is (I − αA)^k ∇L_query(φ).
        jacobian = np.linalg.matrix_power(np.eye(dim + 1) - alpha * support_a, steps)
        expected = jacobian @ (query_a @ phi - query_b)
        gradient, _ = task_gradient("maml", loss, params, task, inner_steps=steps,
                                    inner_lr=alpha)
        np.testing.assert_allclose(flat(gradient), expected, rtol=0, atol=1e-10)


#: Converged inner solves: 500 gradient steps (contraction ≤ 0.9 per step), or one Newton–CG
#: step (the Hessian-free variant; exact on a quadratic with CG steps ≥ the dimension).
SOLVERS = {"gd": {"inner_solver": "gd", "inner_steps": 500, "inner_lr": 0.1},
           "newton": {"inner_solver": "newton", "inner_steps": 1, "solver_cg_steps": 4}}


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("regularization", [0.5, 2.0])
def test_imaml_equals_exact_implicit_gradient(regularization, solver):
    dim = 3
    _model, loss, params = linear_model(dim, seed=1)
    batch = linear_batch(num_tasks=2, dim=dim, seed=3)
    options = {"lam": regularization, "cg_steps": dim + 1, "test_proximal": True,
               **SOLVERS[solver]}
    for index in range(batch.num_tasks):
        task = batch.task(index)
        support_a, support_b = quadratic(task.support_x, task.support_y)
        query_a, query_b = quadratic(task.query_x, task.query_y)
        identity = np.eye(dim + 1)
        phi = np.linalg.solve(support_a + regularization * identity,
                              support_b + regularization * flat(params))
        expected = np.linalg.solve(identity + support_a / regularization, query_a @ phi - query_b)
        gradient, stats = task_gradient("imaml", loss, params, task, **options)
        np.testing.assert_allclose(flat(gradient), expected, rtol=0, atol=1e-9)
        assert stats["cg_residual"] < 1e-8
        # test-time adaptation (proximal term on) reaches the same proximal solution
        (adapted,) = make_method("imaml", **options).adapt(
            loss, params, {}, task.support_x, task.support_y, [options["inner_steps"]])
        np.testing.assert_allclose(flat(adapted), phi, rtol=0, atol=1e-9)


def test_imaml_with_few_cg_steps_is_not_exact():
    """The test above can fail: with 1 CG step the solve is visibly approximate."""
    dim = 3
    _, loss, params = linear_model(dim, seed=1)
    task = linear_batch(num_tasks=1, dim=dim, seed=3).task(0)
    options = {"inner_solver": "gd", "inner_steps": 500, "inner_lr": 0.1, "lam": 0.5}
    exact_grad, _ = task_gradient("imaml", loss, params, task, cg_steps=dim + 1, **options)
    rough_grad, stats = task_gradient("imaml", loss, params, task, cg_steps=1, **options)
    assert np.abs(flat(exact_grad) - flat(rough_grad)).max() > 1e-4
    assert stats["cg_residual"] > 1e-6


def test_cg_damping_solves_the_damped_system():
    dim, damping, regularization = 3, 0.7, 1.5
    _, loss, params = linear_model(dim, seed=2)
    task = linear_batch(num_tasks=1, dim=dim, seed=5).task(0)
    options = {"inner_solver": "gd", "inner_steps": 400, "inner_lr": 0.1, "lam": regularization,
               "cg_steps": dim + 1, "cg_damping": damping}
    support_a, support_b = quadratic(task.support_x, task.support_y)
    query_a, query_b = quadratic(task.query_x, task.query_y)
    identity = np.eye(dim + 1)
    phi = np.linalg.solve(support_a + regularization * identity,
                          support_b + regularization * flat(params))
    expected = np.linalg.solve((1 + damping) * identity + support_a / regularization,
                               query_a @ phi - query_b)
    gradient, _ = task_gradient("imaml", loss, params, task, **options)
    np.testing.assert_allclose(flat(gradient), expected, atol=1e-9)


def test_imaml_authors_scheme_is_plain_steps_then_one_proximal_step_and_a_damped_operator():
    """The authors' form, written out: k plain SGD steps, φ ← φ − αλ(φ − θ), then CG on
    (1 + δ)I + H/(λ + λ_d). On a quadratic the solve is exact with dim + 1 CG steps."""
    dim, lam, delta, lam_d, lr, steps = 3, 2.0, 1.0, 10.0, 0.1, 4
    model = torch.nn.Linear(dim, 1, bias=False).double()
    loss = make_loss(model)
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(8, dim, generator=generator, dtype=torch.float64)
    y = torch.randn(8, 1, generator=generator, dtype=torch.float64)
    xq = torch.randn(6, dim, generator=generator, dtype=torch.float64)
    yq = torch.randn(6, 1, generator=generator, dtype=torch.float64)
    theta = {"weight": torch.randn(1, dim, generator=generator, dtype=torch.float64)}
    gradient, _ = task_gradient(
        "imaml", loss, theta, TaskBatch(x, y, xq, yq), inner_steps=steps, inner_lr=lr, lam=lam,
        cg_steps=dim + 1, cg_damping=delta, lam_damping=lam_d, inner_proximal=False,
        inner_solver="gd")
    hessian = 2 * x.T @ x / 8  # of ‖xw − y‖²/n
    w = theta["weight"].reshape(-1)
    for _ in range(steps):
        w = w - lr * (hessian @ w - 2 * x.T @ y.reshape(-1) / 8)
    w = w - lr * lam * (w - theta["weight"].reshape(-1))
    query_grad = 2 * xq.T @ (xq @ w - yq.reshape(-1)) / 6
    operator = (1 + delta) * torch.eye(dim, dtype=torch.float64) + hessian / (lam + lam_d)
    expected = torch.linalg.solve(operator, query_grad)
    torch.testing.assert_close(gradient["weight"].reshape(-1), expected, rtol=1e-9, atol=1e-12)
