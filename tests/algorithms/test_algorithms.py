"""Each algorithm against a plain, obviously-correct reference on the sinusoid MLP (float64).
The contract every registered method meets is tests/algorithms/test_contract.py."""

import pytest
import torch

from metazoo.algorithms import get_algorithm, make_method, meta_gradient
from metazoo.core import RMSState, adapt, rms, sgd
from metazoo.models import make_loss
from metazoo.tasks import TaskBatch
from tests.helpers import double_mlp, sinusoid_batch, task_gradient


def reference_maml(model, params, task, steps, lr, second_order=True):
    """MAML written the usual way: autograd.grad(create_graph=True) on a parameter list."""
    names = list(params)
    theta = [params[n].clone().requires_grad_(True) for n in names]

    def loss(weights, x, y):
        out = torch.func.functional_call(model, dict(zip(names, weights)), (x,))
        return ((out - y) ** 2).mean()

    fast = theta
    for _ in range(steps):
        grads = torch.autograd.grad(loss(fast, task.support_x, task.support_y), fast,
                                    create_graph=second_order)
        fast = [w - lr * g for w, g in zip(fast, grads)]
    meta = torch.autograd.grad(loss(fast, task.query_x, task.query_y), theta)
    return dict(zip(names, meta))


def assert_trees_close(actual, expected, **tolerance):
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], **tolerance)


def relative_difference(a, b):
    diff = sum(((a[n] - b[n]) ** 2).sum() for n in a).sqrt()
    return (diff / sum((b[n] ** 2).sum() for n in b).sqrt()).item()


@pytest.mark.parametrize("steps", [1, 3])
def test_maml_matches_autograd_reference(steps):
    model, loss, params = double_mlp()
    batch = sinusoid_batch(num_tasks=3)
    for index in range(batch.num_tasks):
        task = batch.task(index)
        gradient, _ = task_gradient("maml", loss, params, task, inner_steps=steps, inner_lr=0.05)
        expected = reference_maml(model, params, task, steps, 0.05)
        assert_trees_close(gradient, expected, rtol=1e-10, atol=1e-12)


def test_maml_matches_finite_differences():
    _model, loss, params = double_mlp(seed=3)
    task = sinusoid_batch(num_tasks=1, seed=2).task(0)
    gradient, _ = task_gradient("maml", loss, params, task, inner_steps=2, inner_lr=0.02)

    def objective(theta):
        adapted = adapt(loss, theta, task.support_x, task.support_y, 2, sgd(0.02)).params
        return loss(adapted, task.query_x, task.query_y).item()

    direction = {n: torch.randn(p.shape, generator=torch.Generator().manual_seed(i),
                                dtype=p.dtype) for i, (n, p) in enumerate(params.items())}
    eps = 1e-6
    plus = objective({n: p + eps * direction[n] for n, p in params.items()})
    minus = objective({n: p - eps * direction[n] for n, p in params.items()})
    numeric = (plus - minus) / (2 * eps)
    analytic = sum((gradient[n] * direction[n]).sum() for n in params).item()
    assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic))


def test_fomaml_is_query_gradient_at_adapted_params_and_differs_from_maml():
    model, loss, params = double_mlp()
    batch = sinusoid_batch(num_tasks=2)
    for index in range(batch.num_tasks):
        task = batch.task(index)
        gradient, _ = task_gradient("fomaml", loss, params, task, inner_steps=3, inner_lr=0.05)
        expected = reference_maml(model, params, task, 3, 0.05, second_order=False)
        assert_trees_close(gradient, expected, rtol=1e-10, atol=1e-12)
        exact, _ = task_gradient("maml", loss, params, task, inner_steps=3, inner_lr=0.05)
        # Nonzero curvature: a silently first-order MAML would fail here.
        assert relative_difference(gradient, exact) > 1e-3


def test_reptile_with_one_step_points_along_joint_gradient():
    _, loss, params = double_mlp()
    task = sinusoid_batch(num_tasks=1).task(0)
    lr = 0.03
    reptile, reptile_stats = task_gradient("reptile", loss, params, task, inner_steps=1,
                                           inner_lr=lr)
    joint, joint_stats = task_gradient("joint", loss, params, task)
    assert_trees_close(reptile, {n: lr * g for n, g in joint.items()}, rtol=1e-10, atol=1e-12)
    # Reptile logs the objective where its last step began: here the loss at θ, joint's.
    torch.testing.assert_close(reptile_stats["loss"], joint_stats["loss"], rtol=1e-12, atol=0)


def test_reptile_direction_is_theta_minus_adapted():
    _, loss, params = double_mlp()
    task = sinusoid_batch(num_tasks=1).task(0)
    direction, stats = task_gradient("reptile", loss, params, task, inner_steps=4, inner_lr=0.02,
                                     data="support")
    adapted = dict(params)
    for _ in range(4):  # plain SGD, written out
        last = loss(adapted, task.support_x, task.support_y)
        grads = torch.func.grad(loss)(adapted, task.support_x, task.support_y)
        adapted = {n: adapted[n] - 0.02 * grads[n] for n in adapted}
    assert_trees_close(direction, {n: params[n] - adapted[n] for n in params})
    torch.testing.assert_close(stats["loss"], last.detach(), rtol=1e-12, atol=0)


def test_joint_is_gradient_on_support_and_query():
    model, loss, params = double_mlp()
    task = sinusoid_batch(num_tasks=1).task(0)
    gradient, _ = task_gradient("joint", loss, params, task)
    theta = {n: p.clone().requires_grad_(True) for n, p in params.items()}
    x = torch.cat([task.support_x, task.query_x])
    y = torch.cat([task.support_y, task.query_y])
    value = ((torch.func.functional_call(model, theta, (x,)) - y) ** 2).mean()
    expected = dict(zip(theta, torch.autograd.grad(value, list(theta.values()))))
    assert_trees_close(gradient, expected)


@pytest.mark.parametrize("steps", [1, 4])
def test_maml_checkpointing_gives_the_same_gradient(steps):
    model, loss, params = double_mlp()
    batch = sinusoid_batch(num_tasks=3)
    for index in range(batch.num_tasks):
        task = batch.task(index)
        expected = reference_maml(model, params, task, steps, 0.05)
        for checkpoint in (True, False):
            gradient, _ = task_gradient("maml", loss, params, task, inner_steps=steps,
                                        inner_lr=0.05, checkpoint=checkpoint)
            assert_trees_close(gradient, expected, rtol=1e-10, atol=1e-12)


def test_metasgd_with_uniform_rates_has_mamls_theta_gradient():
    _, loss, params = double_mlp()
    task = sinusoid_batch(num_tasks=1).task(0)
    gradient, _ = task_gradient("metasgd", loss, params, task, inner_steps=2, inner_lr=0.03)
    exact, _ = task_gradient("maml", loss, params, task, inner_steps=2, inner_lr=0.03)
    assert_trees_close({n: gradient[n] for n in params}, exact, rtol=1e-10, atol=1e-12)
    # and the step sizes get a gradient of their own, the same shapes as θ
    assert all(gradient["inner_lr." + n].shape == p.shape for n, p in params.items())
    assert any(gradient["inner_lr." + n].abs().max() > 0 for n in params)


def test_anil_adapts_only_the_head_and_equals_maml_when_the_head_is_everything():
    _, _loss, params = double_mlp()
    task = sinusoid_batch(num_tasks=1).task(0)
    from metazoo.algorithms.anil import head_names

    settings = get_algorithm("anil").make_settings(inner_steps=2, inner_lr=0.05)
    assert head_names(settings, params) == ["4.weight", "4.bias"]
    (adapted,) = get_algorithm("anil").bind(settings).adapt(
        _loss, params, {}, task.support_x, task.support_y, [3])
    assert torch.equal(adapted["0.weight"], params["0.weight"])  # the body stays fixed
    assert not torch.equal(adapted["4.weight"], params["4.weight"])
    model = torch.nn.Linear(3, 1).double()
    linear_params = {n: p.detach() for n, p in model.named_parameters()}
    linear_loss = make_loss(model)
    x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    task = TaskBatch(x, x.sum(1, keepdim=True), x + 1, x.sum(1, keepdim=True))
    with pytest.raises(ValueError, match="prefix of no parameter name"):
        make_method("anil", head="body").init(linear_params)
    # a one-layer model: its "last layer" is all of it, so ANIL is MAML
    anil_grad, _ = task_gradient("anil", linear_loss, linear_params, task, inner_steps=2,
                                 inner_lr=0.05, head="")
    maml_grad, _ = task_gradient("maml", linear_loss, linear_params, task, inner_steps=2,
                                 inner_lr=0.05)
    assert_trees_close(anil_grad, maml_grad, rtol=1e-12, atol=1e-14)


def test_reptile_with_its_own_inner_adam_is_theta_minus_torch_adam():
    _, loss, params = double_mlp()
    task = sinusoid_batch(num_tasks=1).task(0)
    direction, _ = task_gradient("reptile", loss, params, task, inner_steps=4, inner_lr=0.003,
                                 inner_optimizer="adam", inner_batch=5)
    weights = {n: p.clone().requires_grad_() for n, p in params.items()}
    optimizer = torch.optim.Adam(weights.values(), lr=0.003, betas=(0.0, 0.999))
    x = torch.cat([task.support_x, task.query_x])  # all of the task's data, 17 examples
    y = torch.cat([task.support_y, task.query_y])
    for step in range(4):
        index = (torch.arange(5) + 5 * step) % 17
        optimizer.zero_grad()
        loss(weights, x[index], y[index]).backward()
        optimizer.step()
    assert_trees_close(direction, {n: params[n] - weights[n].detach() for n in params},
                       rtol=1e-10, atol=1e-12)


def test_reptile_carrying_its_adam_state_is_the_reference_loop_at_meta_batch_one():
    # openai/supervised-reptile: one Adam (β1 = 0) whose state outlives every task; after each
    # task the weights are restored to θ and θ ← θ + ε(φ − θ). With one task per meta-batch
    # metazoo's vectorised form (every task starts from the carried moment, which becomes the
    # mean of theirs) is that loop exactly.
    from metazoo.engine.outer import outer_step

    _, loss, params = double_mlp()
    method = make_method("reptile", inner_steps=3, inner_lr=0.01, inner_optimizer="adam",
                         inner_batch=6, carry_moment=True, beta2=0.99)
    start, state = method.init(params)
    meta = {n: p.clone().requires_grad_() for n, p in start.items()}
    outer = torch.optim.SGD(meta.values(), lr=0.5)  # ε
    batches = [sinusoid_batch(num_tasks=1, seed=seed) for seed in range(4)]
    for batch in batches:
        _, state = outer_step(method, loss, meta, state, batch, outer)

    theta = {n: p.clone() for n, p in params.items()}
    weights = {n: p.clone().requires_grad_() for n, p in params.items()}
    inner = torch.optim.Adam(weights.values(), lr=0.01, betas=(0.0, 0.99))
    for batch in batches:
        task = batch.task(0)
        x = torch.cat([task.support_x, task.query_x])  # 17 examples, batches of 6
        y = torch.cat([task.support_y, task.query_y])
        with torch.no_grad():
            for n, weight in weights.items():
                weight.copy_(theta[n])  # restore the weights, keep Adam's state
        for step in range(3):
            index = (torch.arange(6) + 6 * step) % 17
            inner.zero_grad()
            loss(weights, x[index], y[index]).backward()
            inner.step()
        theta = {n: theta[n] + 0.5 * (weights[n].detach() - theta[n]) for n in theta}
    for n in params:
        torch.testing.assert_close(meta[n].detach(), theta[n], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(state["inner_rms"][n],
                                   inner.state[weights[n]]["exp_avg_sq"], rtol=1e-10, atol=1e-14)
    assert state["inner_rms_steps"].item() == 12 == inner.state[weights["0.weight"]]["step"].item()
    assert meta.keys() == params.keys()  # the state is not among the meta-parameters

    # Evaluation adapts from the carried state, as the reference does (its Adam is not reset
    # for evaluation), and differs from a fresh Adam.
    task = batches[0].task(0)
    (carried,) = method.adapt(loss, meta, state, task.support_x, task.support_y, [2])
    fresh = make_method("reptile", inner_steps=3, inner_lr=0.01, inner_optimizer="adam",
                        beta2=0.99)
    (reset,) = fresh.adapt(loss, meta, {}, task.support_x, task.support_y, [2])
    expected = adapt(loss, meta, task.support_x, task.support_y, 2, rms(0.01, 0.99),
                     state=RMSState(state["inner_rms"], state["inner_rms_steps"])).params
    assert_trees_close(carried, expected, rtol=1e-12, atol=1e-14)
    assert not all(torch.allclose(carried[n], reset[n]) for n in params)


def test_reptile_carried_moment_is_the_mean_over_a_meta_batch():
    _, loss, params = double_mlp()
    method = make_method("reptile", inner_steps=2, inner_lr=0.01, inner_optimizer="adam",
                         carry_moment=True)
    meta, state = method.init(params)
    batch = sinusoid_batch(num_tasks=3)
    _, _, mean_state = meta_gradient(method, loss, meta, state, batch)
    states = [method.meta_gradient(loss, meta, state, batch.task(i))[2] for i in range(3)]
    for n in params:
        torch.testing.assert_close(mean_state["inner_rms"][n],
                                   sum(s["inner_rms"][n] for s in states) / 3)
    assert mean_state["inner_rms_steps"].item() == 2
    with pytest.raises(ValueError, match="carry_moment needs inner_optimizer 'adam'"):
        make_method("reptile", carry_moment=True)


def test_imaml_newton_solver_settings_are_checked():
    with pytest.raises(ValueError, match="inner_solver must be 'gd' or 'newton'"):
        make_method("imaml", inner_solver="lbfgs")
    with pytest.raises(ValueError, match="use it with inner_solver 'gd'"):
        make_method("imaml", inner_solver="newton", inner_proximal=False)
    with pytest.raises(ValueError, match="solver_cg_steps must be an integer >= 1"):
        make_method("imaml", inner_solver="newton", solver_cg_steps=0)


def test_imaml_newton_solver_adapts_further_than_its_gradient_steps_at_high_curvature():
    """Where α·h > 2 gradient steps diverge; Newton steps on the same proximal objective
    do not (the reason the solver exists: results/imaml-sinusoid.md)."""
    _, loss, params = double_mlp()
    sharp = {n: 3.0 * p for n, p in params.items()}  # a sharper θ
    task = sinusoid_batch(num_tasks=1).task(0)
    newton = make_method("imaml", lam=10.0)  # the default solver
    gd = make_method("imaml", inner_solver="gd", inner_lr=0.5, lam=10.0, test_proximal=True)
    (by_newton,) = newton.adapt(loss, sharp, {}, task.support_x, task.support_y, [10])
    (by_gd,) = gd.adapt(loss, sharp, {}, task.support_x, task.support_y, [10])
    start = loss(sharp, task.support_x, task.support_y)
    assert loss(by_newton, task.support_x, task.support_y) < start
    assert not loss(by_gd, task.support_x, task.support_y) < start
