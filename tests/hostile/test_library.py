"""Library misuse: refused with a ValueError of one line, inputs left as they were."""

import pytest
import torch

from metazoo.algorithms import get_algorithm, meta_gradient
from metazoo.models import MLP, initial_params, make_loss
from metazoo.tasks import Sinusoid
from metazoo.types import TaskBatch


@pytest.fixture
def mlp():
    model = MLP()
    return make_loss(model), initial_params(model)


def batch():
    return Sinusoid(k_shot=5, query_shots=5).sample(2, torch.Generator().manual_seed(0))


def missing_parameter(loss, params):
    loss({k: v for k, v in params.items() if k != "4.bias"}, torch.zeros(5, 1), torch.zeros(5, 1))


def empty_batch(loss, params):
    b = batch()
    meta_gradient("maml", loss, params, {}, TaskBatch(b.support_x[:0], b.support_y[:0],
                                                      b.query_x[:0], b.query_y[:0]))


def no_support_examples(loss, params):
    b = batch()
    meta_gradient("maml", loss, params, {}, TaskBatch(b.support_x[:, :0], b.support_y[:, :0],
                                                      b.query_x, b.query_y))


def running_statistics(loss, params):
    make_loss(torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.BatchNorm1d(4),
                                  torch.nn.Linear(4, 1)))


def misspelt_setting(loss, params):
    get_algorithm("imaml").make_settings(cg_dampng=21)


CASES = [(missing_parameter, "missing 4.bias"), (empty_batch, "the task batch is empty"),
         (no_support_examples, "no examples to adapt on"),
         (running_statistics, "keeps running statistics"),
         (misspelt_setting, "did you mean cg_damping?")]


@pytest.mark.parametrize("misuse, message", CASES, ids=[c[0].__name__ for c in CASES])
def test_misuse_is_refused_in_one_line(misuse, message, mlp):
    loss, params = mlp
    before = {name: value.clone() for name, value in params.items()}
    with pytest.raises(ValueError, match=message) as refusal:
        misuse(loss, params)
    assert "\n" not in str(refusal.value)
    assert all(torch.equal(params[name], before[name]) for name in before)
