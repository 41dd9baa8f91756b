"""The registry entry is the whole contract: every entry function, for every registered method,
plus a method defined here, in one place, that training, evaluation and ``compare`` pick up
without an edit anywhere else."""

import json
from dataclasses import dataclass

import pytest
import torch

from metazoo.algorithms import (
    ALGORITHMS,
    Method,
    Settings,
    get_algorithm,
    make_method,
    option,
    register,
    unregister,
)
from metazoo.core.autodiff import grad
from metazoo.core.batch import map_tasks
from metazoo.engine import TrainConfig, train
from tests.helpers import double_mlp, sinusoid_batch

TOY = "toy-first-step"


@dataclass(frozen=True)
class ToySettings(Settings):
    scale: float = option(1.0, "multiplies the query gradient at θ")


def toy_meta_gradient(loss, params, task, settings: ToySettings):
    """∇L_query(θ), scaled: MAML with no inner step (its own entry says it approximates MAML)."""
    gradient, value = grad(lambda theta: (loss(theta, task.query_x, task.query_y),) * 2,
                           has_aux=True)(params)
    return {n: settings.scale * g for n, g in gradient.items()}, {"loss": value.detach()}


@pytest.fixture
def toy_method():
    """A method added the way a user adds one: one registration, nothing else edited."""
    register(TOY, ToySettings, "query gradient at θ", approximates="maml")(toy_meta_gradient)
    yield get_algorithm(TOY)
    unregister(TOY)


#: Reptile with carried state (its inner Adam's moment among the meta-parameters).
CARRIED = "reptile+carry_moment"
#: iMAML with gradient-descent inner steps (its default is the Hessian-free Newton–CG solver).
GD = "imaml+gd"


def every_method():
    return [*sorted(ALGORITHMS), TOY, CARRIED, GD]


@pytest.fixture(params=every_method())
def method(request, toy_method) -> Method:
    if request.param == CARRIED:
        return make_method("reptile", inner_steps=2, inner_lr=0.05, inner_optimizer="adam",
                           carry_moment=True)
    if request.param == GD:
        return make_method("imaml", inner_steps=2, inner_lr=0.05, inner_solver="gd")
    return make_method(request.param, inner_steps=2, inner_lr=0.05)


def test_init_and_model_params_round_trip(method):
    _, _, params = double_mlp()
    meta = method.init(params)
    for name, p in params.items():  # the model's parameters, under their own names
        assert torch.equal(meta[name], p)
    model = method.model_params(meta)
    assert model.keys() == params.keys()
    assert all(torch.equal(model[n], params[n]) for n in params)
    swapped = method.with_model_params(meta, {n: p + 1 for n, p in params.items()})
    assert swapped.keys() == meta.keys()
    assert torch.equal(method.model_params(swapped)["0.weight"], params["0.weight"] + 1)


def test_test_time_adaptation_returns_one_iterate_per_step_count(method):
    _, loss, params = double_mlp()
    meta = method.init(params)
    task = sinusoid_batch(num_tasks=1).task(0)
    iterates = method.adapt(loss, meta, task.support_x, task.support_y, [0, 1, 3])
    assert len(iterates) == 3
    for phi in iterates:
        assert phi.keys() == params.keys()
        assert all(phi[n].shape == params[n].shape and torch.isfinite(phi[n]).all() for n in phi)
    assert all(torch.equal(iterates[0][n], params[n]) for n in params)  # 0 steps: θ itself
    assert any(not torch.equal(iterates[2][n], params[n]) for n in params)
    # the iterates lie on one trajectory: asking for 3 steps alone gives the same φ
    (alone,) = method.adapt(loss, meta, task.support_x, task.support_y, [3])
    for name in params:
        torch.testing.assert_close(alone[name], iterates[2][name], rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="increasing"):
        method.adapt(loss, meta, task.support_x, task.support_y, [3, 1])


def test_test_time_adaptation_vmaps_over_tasks(method):
    _, loss, params = double_mlp()
    meta = method.init(params)
    batch = sinusoid_batch(num_tasks=3)

    def after(task):
        (phi,) = method.adapt(loss, meta, task.support_x, task.support_y, [2])
        return loss(phi, task.query_x, task.query_y)

    torch.testing.assert_close(map_tasks(after, batch, strategy="vmap"),
                               map_tasks(after, batch, strategy="loop"), rtol=1e-10, atol=1e-12)


def test_as_gradient_and_variants(method):
    _, loss, params = double_mlp()
    meta = method.init(params)
    task = sinusoid_batch(num_tasks=1).task(0)
    direction, _ = method.meta_gradient(loss, meta, task)
    estimate = method.as_gradient({n: direction[n] for n in params})
    assert estimate.keys() == params.keys()
    assert all(estimate[n].shape == params[n].shape for n in params)
    variants = method.variants()
    assert variants and all(v.algorithm is method.algorithm for v in variants.values())
    if method.algorithm.approximates:
        assert method.algorithm.approximates in ALGORITHMS


def test_settings_refuse_typos_and_foreign_settings(method):
    algorithm = method.algorithm
    with pytest.raises(ValueError, match="takes no option"):
        algorithm.make_settings(inner_stepz=3)
    other = next(a for name, a in ALGORITHMS.items() if a.settings is not algorithm.settings)
    with pytest.raises(ValueError, match=f"{algorithm.name} needs"):
        algorithm.make(other.make_settings())


def test_a_method_added_in_one_place_trains_evaluates_and_is_compared(toy_method, tmp_path):
    from metazoo.analysis.compare import CompareConfig, compare

    config = TrainConfig(algorithm=TOY, algorithm_options={"scale": 0.5}, iterations=20,
                         meta_batch=4, eval_tasks=12, eval_steps=[0, 2], strategy="vmap")
    summary = train(config, tmp_path / "run", progress=False)
    assert summary["report"][2]["loss"].mean < summary["report"][0]["loss"].mean
    with pytest.raises(ValueError, match="did you mean scale"):
        TrainConfig(algorithm=TOY, algorithm_options={"scael": 1.0})

    out = tmp_path / "cmp"
    index = compare(CompareConfig(algorithms=["maml", TOY], train_steps=[1], seeds=[0, 1],
                                  iterations=8, meta_batch=4, eval_tasks=12, analysis_tasks=4,
                                  test_steps=[0, 1], fidelity_steps=[1], cost_steps=[1],
                                  toy_iterations=0, jobs=1), out, progress=False)
    report = index.read_text()
    assert f"maml − {TOY}" in report  # question 1 pairs it with the method it approximates
    assert f"| {TOY} | 1 |" in report  # question 4 measures its fidelity
    records = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert {r["algorithm"] for r in records} == {"maml", TOY}
