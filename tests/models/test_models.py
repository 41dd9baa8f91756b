"""The built-in Conv4 against the textbook block order."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn

from metazoo.algorithms import meta_gradient
from metazoo.cli import main
from metazoo.models import (
    MLP,
    Conv4,
    check_buffers,
    initial_params,
    make_loss,
    make_model,
    make_predict,
    task_shapes,
)
from metazoo.tasks import LinearRegression, Sinusoid, TaskBatch
from tests.helpers import task_gradient


def textbook_conv4(n_way: int, hidden: int, image_size: int) -> nn.Module:
    """Conv → BatchNorm → ReLU → max-pool, four times, then a linear head: the order most
    few-shot code writes (the parameter names match metazoo's Conv4)."""
    blocks, channels, size = [], 1, image_size
    for _ in range(4):
        blocks += [nn.Conv2d(channels, hidden, 3, padding=1),
                   nn.BatchNorm2d(hidden, track_running_stats=False), nn.ReLU(), nn.MaxPool2d(2)]
        channels, size = hidden, size // 2
    model = nn.Module()
    model.features = nn.Sequential(*blocks)
    model.head = nn.Linear(hidden * size * size, n_way)
    model.forward = lambda x: model.head(model.features(x).flatten(1))
    return model


def sparse_images(generator: torch.Generator, count: int, size: int) -> torch.Tensor:
    """Omniglot-like inputs: mostly blank, so pooling windows hold many exact ties."""
    return (torch.rand(count, 1, size, size, generator=generator) < 0.15).double()


def test_conv4_pooling_before_relu_is_the_textbook_net_with_the_same_gradients():
    generator = torch.Generator().manual_seed(0)
    ours = Conv4(3, hidden=8, image_size=16).double()
    reference = textbook_conv4(3, hidden=8, image_size=16).double()
    params = initial_params(ours)
    assert list(params) == [name for name, _ in reference.named_parameters()]
    labels = torch.arange(3)
    batch = TaskBatch(sparse_images(generator, 2 * 3, 16).view(2, 3, 1, 16, 16),
                      labels.expand(2, -1).contiguous(),
                      sparse_images(generator, 2 * 6, 16).view(2, 6, 1, 16, 16),
                      labels.repeat(2).expand(2, -1).contiguous())
    x, y = batch.query_x[0], batch.query_y[0]
    mine, theirs = make_loss(ours, "cross_entropy"), make_loss(reference, "cross_entropy")
    assert torch.equal(mine(params, x, y), theirs(params, x, y))
    first = torch.func.grad(mine)(params, x, y)
    assert all(torch.equal(first[n], g) for n, g in torch.func.grad(theirs)(params, x, y).items())
    # Second order: MAML's meta-gradient differentiates through the inner step.
    for index in range(batch.num_tasks):
        task = batch.task(index)
        a, _ = task_gradient("maml", mine, params, task, inner_steps=2, inner_lr=0.4)
        b, _ = task_gradient("maml", theirs, params, task, inner_steps=2, inner_lr=0.4)
        for name in params:
            torch.testing.assert_close(a[name], b[name], rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- any model

USER_MODELS = '''
import torch
from torch import nn

calls = []

def build(input_shape, output_size):
    calls.append((input_shape, output_size))
    return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.Size(input_shape).numel()), 7),
                         nn.Tanh(), nn.Linear(7, output_size))

def with_running_stats(input_shape, output_size):
    return nn.Sequential(nn.Linear(input_shape[0], 5), nn.BatchNorm1d(5),
                         nn.Linear(5, output_size))

def broken(input_shape, output_size):
    raise RuntimeError("no GPU\\nsecond line")

def not_a_module(input_shape, output_size):
    return 3

def no_parameters(input_shape, output_size):
    return nn.ReLU()

NOT_CALLABLE = 4
'''


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    """A module ``user_models`` of the user's own, importable from ``tmp_path``."""
    (tmp_path / "user_models.py").write_text(textwrap.dedent(USER_MODELS))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_models", raising=False)
    yield tmp_path
    sys.modules.pop("user_models", None)


class ImageTasks:
    """A stand-in classification family: 4-way tasks of 2×5×5 images."""

    loss = "cross_entropy"
    n_way = 4

    def sample(self, num_tasks, generator):
        labels = torch.arange(self.n_way).repeat(num_tasks, 2)  # [T, 8]
        images = torch.rand(num_tasks, 8, 2, 5, 5, generator=generator)
        return TaskBatch(images, labels, images, labels)


def test_task_shapes_give_input_shape_and_output_size():
    assert task_shapes(Sinusoid()) == ((1,), 1)
    assert task_shapes(LinearRegression(dim=3)) == ((3,), 1)
    assert task_shapes(ImageTasks()) == ((2, 5, 5), 4)


def test_a_user_factory_is_built_sized_by_the_task(user_models):
    import user_models as module

    model = make_model("user_models:build", LinearRegression(dim=3))
    assert module.calls == [((3,), 1)]
    assert model[1].in_features == 3 and model[3].out_features == 1
    model = make_model("user_models:build", ImageTasks())
    assert module.calls[-1] == ((2, 5, 5), 4)
    batch = ImageTasks().sample(1, torch.Generator().manual_seed(0))
    assert make_predict(model)(initial_params(model), batch.support_x[0]).shape == (8, 4)


def test_built_in_models_take_the_same_signature():
    assert [m.in_features for m in make_model("mlp", LinearRegression(dim=3))
            if isinstance(m, nn.Linear)] == [3, 40, 40]
    assert make_model("conv4-stride", ImageTasks()).head.out_features == 4
    assert make_model("conv4-stride", ImageTasks()).features[0].in_channels == 2
    with pytest.raises(ValueError, match=r"at least 16×16; got 5×5 \(choose conv4-stride"):
        make_model("conv4", ImageTasks())
    with pytest.raises(ValueError, match=r"'conv4' takes square images .* shape \[1\]"):
        make_model("conv4", Sinusoid())
    with pytest.raises(ValueError, match=r"'mlp' takes inputs that are vectors"):
        make_model("mlp", ImageTasks())


BAD_SPECS = [
    ("nope", "unknown model 'nope'; choose one of: conv4, conv4-32, conv4-stride, linear, mlp, or name"),
    ("user_models", "unknown model 'user_models'"),
    (":build", "unknown model ':build'"),
    ("no_such_package_xyz:build", "cannot import module 'no_such_package_xyz' (ModuleNotFound"),
    ("user_models:missing", "module 'user_models' has no attribute 'missing'"),
    ("user_models:NOT_CALLABLE", "'NOT_CALLABLE' is a int, not a function or class"),
    ("user_models:broken",
     "broken(input_shape=(3,), output_size=1) raised RuntimeError: no GPU second line"),
    ("user_models:not_a_module", "returned a int, not a torch.nn.Module"),
    ("user_models:no_parameters", "returned a module with no parameters"),
]


@pytest.mark.parametrize("spec, message", BAD_SPECS, ids=[s for s, _ in BAD_SPECS])
def test_a_bad_model_spec_is_one_line(spec, message, user_models):
    with pytest.raises(ValueError) as error:
        make_model(spec, LinearRegression(dim=3))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_cli_trains_a_model_from_a_module_in_the_current_folder(user_models, monkeypatch,
                                                               capsys):
    monkeypatch.chdir(user_models)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(user_models)])
    code = main(["train", "--model", "user_models:build", "--iterations", "3",
                 "--eval-tasks", "5", "--out", "run", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert "0.weight" not in (user_models / "run" / "results.md").read_text()
    code = main(["train", "--model", "user_models:broken", "--iterations", "1", "--out", "bad"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "raised RuntimeError: no GPU" in err, err
    assert not (user_models / "bad").exists()


# ----------------------------------------------------------------------------- buffers


def with_batchnorm(track_running_stats: bool) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(1, 6), nn.BatchNorm1d(6, track_running_stats=track_running_stats),
                             nn.ReLU(), nn.Linear(6, 1))


@pytest.mark.parametrize("layer", [nn.BatchNorm1d(3), nn.BatchNorm2d(3),
                                   nn.InstanceNorm1d(3, track_running_stats=True)],
                         ids=["bn1d", "bn2d", "instancenorm"])
def test_running_statistics_are_refused_naming_the_module_and_the_fix(layer):
    model = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.Identity(), layer))
    for build in (make_loss, make_predict):
        with pytest.raises(ValueError, match=r"submodule '1\.1' \(\w+\) keeps running statistics"
                                             r".*track_running_stats=False") as error:
            build(model)
        assert "\n" not in str(error.value)


@pytest.mark.parametrize("strategy", ["vmap", "loop"])
def test_running_statistics_are_refused_before_any_strategy_runs(strategy, user_models):
    from metazoo.engine import TrainConfig, train

    config = TrainConfig(model="user_models:with_running_stats", iterations=1, strategy=strategy)
    with pytest.raises(ValueError, match="keeps running statistics"):
        train(config, user_models / "run", progress=False)
    assert not (user_models / "run").exists()


def test_batch_statistics_are_per_task_and_agree_across_strategies():
    model = with_batchnorm(track_running_stats=False).double()
    loss, params = make_loss(model), initial_params(model)
    batch = Sinusoid(k_shot=5, query_shots=6).sample(4, torch.Generator().manual_seed(1)).to(
        "cpu", torch.float64)
    results = [meta_gradient("maml", loss, params, {}, batch, strategy=s) for s in ("vmap", "loop")]
    for name in params:
        torch.testing.assert_close(results[0][0][name], results[1][0][name])
    assert not list(model.buffers())


def test_stored_statistics_in_eval_mode_are_constants_and_stay_unchanged():
    model = with_batchnorm(track_running_stats=True).double().eval()
    check_buffers(model)  # eval mode reads the running statistics; nothing is written
    before = {n: b.clone() for n, b in model.named_buffers()}
    batch = Sinusoid(k_shot=5, query_shots=6).sample(3, torch.Generator().manual_seed(1)).to(
        "cpu", torch.float64)
    for strategy in ("vmap", "loop"):
        meta_gradient("maml", make_loss(model), initial_params(model), {}, batch,
                      strategy=strategy)
    assert all(torch.equal(before[n], b) for n, b in model.named_buffers())


class Counter(nn.Module):
    """A module that counts its calls in a buffer: state written in place."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(1, 1)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return self.layer(x)


@pytest.mark.parametrize("strategy", ["vmap", "loop"])
def test_a_buffer_written_in_forward_is_refused(strategy):
    loss = make_loss(Counter())
    batch = Sinusoid().sample(2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"changed its buffer\(s\) calls in place"):
        meta_gradient("maml", loss, initial_params(Counter()), {}, batch, strategy=strategy)


# ----------------------------------------------------------------------------- params


def test_params_must_match_the_module_exactly():
    model = MLP()
    loss, params = make_loss(model), initial_params(model)
    x, y = torch.randn(5, 1), torch.randn(5, 1)
    missing = {n: p for n, p in params.items() if n != "4.bias"}
    with pytest.raises(ValueError, match=r"params do not match .*: missing 4\.bias;"):
        loss(missing, x, y)
    with pytest.raises(ValueError, match=r"unexpected extra"):
        loss({**params, "extra": torch.zeros(1)}, x, y)
    # A [1] bias would broadcast where [40] is expected: refused, not silently used.
    with pytest.raises(ValueError, match=r"0\.bias is \[1\], not \[40\]"):
        loss({**params, "0.bias": torch.zeros(1)}, x, y)
    with pytest.raises(ValueError, match="missing 4.bias"):
        make_predict(model)(missing, x)


@pytest.mark.parametrize("strategy", ["vmap", "loop"])
def test_a_missing_parameter_is_refused_inside_the_algorithms(strategy):
    model = MLP()
    params = {n: p for n, p in initial_params(model).items() if n != "4.bias"}
    batch = Sinusoid().sample(2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="missing 4.bias"):
        meta_gradient("maml", make_loss(model), params, {}, batch, strategy=strategy)


def test_a_target_shaped_unlike_the_prediction_is_refused():
    """[S] targets against [S, 1] predictions would broadcast to an [S, S] loss."""
    from metazoo.models import MLP, initial_params, make_loss

    model = MLP()
    loss = make_loss(model, "mse")
    params = initial_params(model)
    x = torch.zeros(4, 1)
    assert torch.isfinite(loss(params, x, torch.zeros(4, 1)))
    with pytest.raises(ValueError, match=r"predicts shape \[4, 1\] but the targets have shape \[4\]"):
        loss(params, x, torch.zeros(4))
