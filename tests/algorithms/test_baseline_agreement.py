"""The library against the independent plain-PyTorch reference of ``tests/reference.py``, on the
MLP and on a small Conv4 with batch-statistics BatchNorm and cross-entropy."""

import pytest
import torch

from metazoo.algorithms import ALGORITHMS, get_algorithm, meta_gradient
from metazoo.models import Conv4, initial_params, make_loss
from metazoo.tasks import TaskBatch
from tests.helpers import double_mlp, sinusoid_batch
from tests.reference import Baseline


def tiny_classification_batch(tasks=3, n_way=3, k_shot=2, query=2):
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n_way)
    return TaskBatch(
        torch.rand(tasks, n_way * k_shot, 1, 16, 16, generator=generator, dtype=torch.float64),
        labels.repeat(k_shot).expand(tasks, -1).contiguous(),
        torch.rand(tasks, n_way * query, 1, 16, 16, generator=generator, dtype=torch.float64),
        labels.repeat(query).expand(tasks, -1).contiguous(),
    )


#: Settings beyond the defaults that change the computation: iMAML's default inner solver is
#: Newton–CG; its gradient-descent solver is checked too.
VARIANTS = {"imaml+gd": ("imaml", {"inner_solver": "gd"})}


@pytest.mark.parametrize("case", [*sorted(ALGORITHMS), *VARIANTS])
@pytest.mark.parametrize("model_kind", ["mlp", "conv4"])
def test_library_equals_plain_pytorch_baseline(case, model_kind):
    name, options = VARIANTS.get(case, (case, {}))
    if model_kind == "mlp":
        model, loss, params = double_mlp()
        batch, loss_name, lr = sinusoid_batch(num_tasks=4), "mse", 0.02
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = Conv4(3, hidden=8, image_size=16).double()
        loss_name, lr = "cross_entropy", 0.1
        loss, params, batch = make_loss(model, loss_name), initial_params(model), \
            tiny_classification_batch()
    settings = get_algorithm(name).make_settings(inner_steps=2, inner_lr=lr, **options)
    method = get_algorithm(name).bind(settings)
    params, state = method.init(params)
    reference = Baseline(name, model, loss_name, settings).meta_gradient(list(params.values()),
                                                                         batch)
    for strategy in ("vmap", "loop"):
        gradient, _, _ = meta_gradient(method, loss, params, state, batch, strategy=strategy)
        for (key, value), expected in zip(gradient.items(), reference):
            torch.testing.assert_close(value, expected, rtol=1e-9, atol=1e-11, msg=key)
