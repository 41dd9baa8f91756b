"""Analysis metrics against values computed by hand on quadratics."""

import itertools
import math

import numpy as np
import pytest
import torch

from metazoo.algorithms import make_method
from metazoo.analysis.metrics import fidelity, matched_start, path_metrics, top_eigenvalue
from metazoo.models import make_loss
from metazoo.tasks import TaskBatch


def quadratic_task():
    """A linear model (no bias) on fixed data: L(w) = ‖Xw − y‖²/n, Hessian A = 2XᵀX/n."""
    model = torch.nn.Linear(2, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
    x = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([[1.0], [0.5], [0.0]], dtype=torch.float64)
    params = {"weight": model.weight.detach().clone()}
    hessian = 2 * x.T @ x / 3
    return make_loss(model), params, TaskBatch(x, y, x, y), hessian, x, y


def hand_path(params, hessian, x, y, steps, lr):
    w = params["weight"].reshape(-1).numpy()
    a, b = hessian.numpy(), (2 * x.T @ y / 3).numpy().reshape(-1)
    grads, iterates = [], [w]
    for _ in range(steps):
        g = a @ iterates[-1] - b
        grads.append(g)
        iterates.append(iterates[-1] - lr * g)
    return grads, iterates


def test_path_metrics_on_a_quadratic():
    loss, params, task, hessian, x, y = quadratic_task()
    metrics = path_metrics(loss, params, task, 3, make_method("maml", inner_lr=0.1))
    grads, iterates = hand_path(params, hessian, x, y, 3, 0.1)
    cosines = [g1 @ g2 / np.linalg.norm(g1) / np.linalg.norm(g2) for g1, g2 in itertools.pairwise(grads)]
    length = sum(0.1 * np.linalg.norm(g) for g in grads)
    displacement = np.linalg.norm(iterates[-1] - iterates[0])
    curvature = np.mean([g @ hessian.numpy() @ g / (g @ g) for g in grads])
    assert metrics["consecutive_cosine"].item() == pytest.approx(np.mean(cosines), rel=1e-10)
    assert metrics["path_length"].item() == pytest.approx(length, rel=1e-10)
    assert metrics["displacement"].item() == pytest.approx(displacement, rel=1e-10)
    assert metrics["straightness"].item() == pytest.approx(displacement / length, rel=1e-10)
    assert metrics["first_grad_norm"].item() == pytest.approx(np.linalg.norm(grads[0]), rel=1e-10)
    assert metrics["path_curvature"].item() == pytest.approx(curvature, rel=1e-10)
    top = np.linalg.eigvalsh(hessian.numpy()).max()
    assert metrics["top_eigenvalue"].item() == pytest.approx(top, rel=1e-6)


def test_one_step_path_is_straight_and_has_no_cosine():
    loss, params, task, *_ = quadratic_task()
    metrics = path_metrics(loss, params, task, 1, make_method("maml", inner_lr=0.1))
    assert metrics["straightness"].item() == pytest.approx(1.0, rel=1e-12)
    assert math.isnan(metrics["consecutive_cosine"].item())


def test_top_eigenvalue_of_a_known_hessian():
    model = torch.nn.Linear(3, 1, bias=False).double()
    loss = make_loss(model)
    x = torch.diag(torch.tensor([3.0, 1.0, 0.5], dtype=torch.float64))  # A = 2 diag(x²)/3
    y = torch.zeros(3, 1, dtype=torch.float64)
    params = {"weight": torch.ones(1, 3, dtype=torch.float64)}
    assert top_eigenvalue(loss, params, x, y, iterations=50).item() == pytest.approx(6.0, rel=1e-8)


def test_fidelity_is_one_where_the_approximation_is_exact_and_less_elsewhere():
    loss, params, task, *_ = quadratic_task()
    zero = make_method("maml", inner_steps=0)
    # k = 0: first-order MAML is exact; MAML against itself is exact for any k.
    exact = fidelity(loss, params, task, make_method("fomaml", inner_steps=0), zero)
    assert exact["cosine"].item() == pytest.approx(1.0, abs=1e-12)
    assert exact["norm_ratio"].item() == pytest.approx(1.0, abs=1e-12)
    steps3 = make_method("maml", inner_steps=3, inner_lr=0.2)
    same = fidelity(loss, params, task, steps3, steps3)
    assert same["cosine"].item() == pytest.approx(1.0, abs=1e-12)
    rough = fidelity(loss, params, task, make_method("fomaml", inner_steps=3, inner_lr=0.2), steps3)
    assert rough["norm_ratio"].item() != pytest.approx(1.0, abs=1e-3)
    # Reptile with k = 1 on the support set, divided by α (its as_gradient), is the gradient
    # at θ: exact for k = 0 MAML when support and query coincide (as here), in direction and
    # in size.
    one = make_method("reptile", inner_steps=1, inner_lr=0.2, data="support")
    reptile = fidelity(loss, params, task, one, zero)
    assert reptile["cosine"].item() == pytest.approx(1.0, abs=1e-12)
    assert reptile["norm_ratio"].item() == pytest.approx(1.0, abs=1e-12)


def test_mean_ci_uses_student_t():
    from metazoo.stats import mean_ci

    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert math.isnan(mean_ci([5.0])[1])


def test_matched_gain_separates_starting_loss_from_gain():
    from metazoo.stats import matched_gain

    # θ "low" starts lower on average, but at equal starting loss both gain the same
    # fraction (half): its raw mean gain is smaller, its matched gain is not.
    generator = torch.Generator().manual_seed(0)
    low = torch.rand(400, generator=generator, dtype=torch.float64) * 2  # U[0, 2]
    high = 1 + torch.rand(400, generator=generator, dtype=torch.float64) * 2  # U[1, 3]
    result = matched_gain({"low": low, "high": high}, {"low": low / 2, "high": high / 2},
                          bins=8, min_count=5)
    raw_low, raw_high = (low / 2).mean().item(), (high / 2).mean().item()
    assert raw_high - raw_low > 0.4
    assert abs(result["matched"]["low"] - result["matched"]["high"]) < 0.1
    assert result["bins_used"] >= 2
    # and where one θ truly gains more at the same start, the matched gain shows it
    better = matched_gain({"a": low, "b": low.clone()}, {"a": low * 0.5, "b": low * 0.8})
    assert better["matched"]["a"] > better["matched"]["b"]


def test_matched_start_hits_the_target_loss_and_measures_the_gain_exactly():
    # Per-task quadratic ½‖w − c_t‖² (support = query): the query loss at θ + s·d is
    # ½‖θ + s·d − c_t‖², and k SGD steps of size α scale w − c_t by (1 − α)^k, so the loss
    # after adaptation is (1 − α)^(2k) times the loss before, task by task.
    torch.manual_seed(0)
    tasks_count, dim, alpha, steps = 6, 4, 0.3, 3
    centres = torch.randn(tasks_count, 1, dim, dtype=torch.float64)
    ys = centres.expand(tasks_count, 2, dim).clone()
    xs = torch.zeros(tasks_count, 2, 1, dtype=torch.float64)
    tasks = TaskBatch(xs, ys, xs, ys)

    def loss(p, x, y):
        return 0.5 * ((p["w"] - y.mean(0)) ** 2).sum()

    theta = {"w": centres.mean(0)[0].clone()}
    start = torch.stack([loss(theta, xs[t], ys[t]) for t in range(tasks_count)]).mean().item()
    method = make_method("maml", inner_lr=alpha)
    result = matched_start(loss, theta, tasks, 3 * start, steps, method)
    assert result["scale"] > 0
    assert result["pre"].mean().item() == pytest.approx(3 * start, rel=1e-6)
    torch.testing.assert_close(result["post"], (1 - alpha) ** (2 * steps) * result["pre"],
                               rtol=1e-12, atol=1e-14)
    # A θ already above the target is left where it is.
    unmoved = matched_start(loss, theta, tasks, 0.5 * start, steps, method)
    assert unmoved["scale"] == 0.0
    assert unmoved["pre"].mean().item() == pytest.approx(start, rel=1e-12)
