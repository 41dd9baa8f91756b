"""The registry entry is the whole contract: every entry function, for every registered method,
plus a method defined here, in one place, that training, evaluation and ``compare`` pick up
without an edit anywhere else."""

import json
from dataclasses import dataclass

import pytest
import torch

from metazoo.algorithms import (
    ALGORITHMS,
    Algorithm,
    Analysis,
    Method,
    Settings,
    describe,
    get_algorithm,
    make_method,
    meta_gradient,
    register,
    unregister,
)
from metazoo.algorithms.base import model_itself, plain_init, sgd_adapt, sgd_rule
from metazoo.core.autodiff import grad
from metazoo.core.batch import map_tasks
from metazoo.core.tree import flatten
from metazoo.engine import TrainConfig, train
from metazoo.options import option
from tests.helpers import double_mlp, sinusoid_batch

TOY = "toy-first-step"


@dataclass(frozen=True)
class ToySettings(Settings):
    scale: float = option(1.0, "multiplies the query gradient at θ")


def make_toy(settings: ToySettings) -> Method:
    """∇L_query(θ), scaled: MAML with no inner step (its own analysis says it approximates
    MAML)."""

    def toy_meta_gradient(loss, params, state, task):
        gradient, value = grad(lambda theta: (loss(theta, task.query_x, task.query_y),) * 2,
                               has_aux=True)(params)
        return {n: settings.scale * g for n, g in gradient.items()}, {"loss": value.detach()}, \
            state

    return Method(TOY, settings, plain_init, toy_meta_gradient, sgd_adapt(settings),
                  model_itself)


@pytest.fixture
def toy_method():
    """A method added the way a user adds one: one registration, nothing else edited."""
    register(Algorithm(TOY, "query gradient at θ", ToySettings, make_toy,
                       lambda settings: Analysis(sgd_rule(settings), approximates="maml")))
    yield get_algorithm(TOY)
    unregister(TOY)


#: Reptile with carried state (its inner Adam's moment).
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
    meta, state = method.init(params)
    for name, p in params.items():  # the model's parameters, under their own names
        assert torch.equal(meta[name], p)
    model = method.model_params(meta)
    assert model.keys() == params.keys()
    assert all(torch.equal(model[n], params[n]) for n in params)
    # carried state is state, never a meta-parameter: no name is shared
    assert not set(flatten(state)) & set(meta)
    assert all(isinstance(v, torch.Tensor) for v in flatten(state).values())


def test_meta_gradient_is_shaped_like_params_finite_pure_and_deterministic(method):
    _, loss, params = double_mlp()
    meta, state = method.init(params)
    before = {n: p.clone() for n, p in {**meta, **flatten(state)}.items()}
    task = sinusoid_batch(num_tasks=1).task(0)
    gradient, stats, new_state = method.meta_gradient(loss, meta, state, task)
    assert gradient.keys() == meta.keys()
    assert all(gradient[n].shape == meta[n].shape for n in meta)
    assert all(torch.isfinite(g).all() for g in gradient.values())
    assert "loss" in stats and all(s.dim() == 0 and torch.isfinite(s) for s in stats.values())
    # the state keeps its structure, shapes and dtypes
    assert {n: (v.shape, v.dtype) for n, v in flatten(new_state).items()} == \
        {n: (v.shape, v.dtype) for n, v in flatten(state).items()}
    # inputs left unchanged, and the same call gives the same numbers
    assert all(torch.equal(before[n], v) for n, v in {**meta, **flatten(state)}.items())
    again, _, again_state = method.meta_gradient(loss, meta, state, task)
    assert all(torch.equal(gradient[n], again[n]) for n in gradient)
    assert all(torch.equal(flatten(new_state)[n], v) for n, v in flatten(again_state).items())


def test_meta_gradient_vmaps_over_tasks(method):
    _, loss, params = double_mlp()
    meta, state = method.init(params)
    batch = sinusoid_batch(num_tasks=3)
    looped = meta_gradient(method, loss, meta, state, batch, strategy="loop")
    mapped = meta_gradient(method, loss, meta, state, batch, strategy="vmap")
    chunked = meta_gradient(method, loss, meta, state, batch, strategy="vmap", chunk_size=2)
    for one, other, third in zip(looped, mapped, chunked):
        torch.testing.assert_close(flatten(other), flatten(one), rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(flatten(third), flatten(other), rtol=1e-12, atol=1e-14)
    # a mean over tasks, not the meta-gradient of one task
    single, _, _ = method.meta_gradient(loss, meta, state, batch.task(0))
    difference = sum(((single[n] - mapped[0][n]) ** 2).sum() for n in single).sqrt()
    assert difference > 1e-3 * sum((g ** 2).sum() for g in mapped[0].values()).sqrt()


def test_meta_gradient_keeps_float32(method):
    _, loss, params = double_mlp()
    meta, state = method.init({n: p.float() for n, p in params.items()})
    batch = sinusoid_batch(num_tasks=3, dtype=torch.float32)
    # The module is float64 but functional_call uses the given float32 tensors throughout.
    gradient, stats, new_state = meta_gradient(method, loss, meta, state, batch)
    assert all(g.dtype == torch.float32 for g in gradient.values())
    assert all(s.dtype == torch.float32 for s in flatten(new_state).values())
    assert all(s.dtype == torch.float32 for s in stats.values())
    assert all(not g.requires_grad for g in gradient.values())


def test_test_time_adaptation_returns_one_iterate_per_step_count(method):
    _, loss, params = double_mlp()
    meta, state = method.init(params)
    task = sinusoid_batch(num_tasks=1).task(0)
    iterates = method.adapt(loss, meta, state, task.support_x, task.support_y, [0, 1, 3])
    assert len(iterates) == 3
    for phi in iterates:
        assert phi.keys() == params.keys()
        assert all(phi[n].shape == params[n].shape and torch.isfinite(phi[n]).all() for n in phi)
    assert all(torch.equal(iterates[0][n], params[n]) for n in params)  # 0 steps: θ itself
    assert any(not torch.equal(iterates[2][n], params[n]) for n in params)
    # the iterates lie on one trajectory: asking for 3 steps alone gives the same φ
    (alone,) = method.adapt(loss, meta, state, task.support_x, task.support_y, [3])
    for name in params:
        torch.testing.assert_close(alone[name], iterates[2][name], rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="increasing"):
        method.adapt(loss, meta, state, task.support_x, task.support_y, [3, 1])


def test_test_time_adaptation_vmaps_over_tasks(method):
    _, loss, params = double_mlp()
    meta, state = method.init(params)
    batch = sinusoid_batch(num_tasks=3)

    def after(task):
        (phi,) = method.adapt(loss, meta, state, task.support_x, task.support_y, [2])
        return loss(phi, task.query_x, task.query_y)

    torch.testing.assert_close(map_tasks(after, batch, strategy="vmap"),
                               map_tasks(after, batch, strategy="loop"), rtol=1e-10, atol=1e-12)


def test_analysis_record(method):
    _, loss, params = double_mlp()
    meta, state = method.init(params)
    task = sinusoid_batch(num_tasks=1).task(0)
    direction, _, _ = method.meta_gradient(loss, meta, state, task)
    analysis = describe(method)
    assert analysis.test_rule
    as_gradient = analysis.as_gradient or (lambda d: d)
    estimate = as_gradient({n: direction[n] for n in params})
    assert estimate.keys() == params.keys()
    assert all(estimate[n].shape == params[n].shape for n in params)
    algorithm = get_algorithm(method.name)
    assert all(isinstance(v, algorithm.settings) for v in analysis.variants.values())
    for variant in analysis.variants.values():  # each variant is a method of its own
        assert algorithm.bind(variant).name == method.name
    if analysis.approximates:
        assert analysis.approximates in ALGORITHMS
    assert all(rival in ALGORITHMS for rival in analysis.rivals)


def test_settings_refuse_typos_and_foreign_settings(method):
    algorithm = get_algorithm(method.name)
    with pytest.raises(ValueError, match="takes no option"):
        algorithm.make_settings(inner_stepz=3)
    other = next(a for name, a in ALGORITHMS.items() if a.settings is not algorithm.settings)
    with pytest.raises(ValueError, match=f"{algorithm.name} needs"):
        algorithm.bind(other.make_settings())


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
