"""The built-in Conv4 against the textbook block order."""

from __future__ import annotations

import torch
from torch import nn

from metazoo.algorithms import get_algorithm
from metazoo.models import Conv4, initial_params, make_loss
from metazoo.tasks import TaskBatch


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
    maml = get_algorithm("maml")
    settings = maml.make_settings(inner_steps=2, inner_lr=0.4)
    for index in range(batch.num_tasks):
        task = batch.task(index)
        a, _ = maml.meta_gradient(mine, params, task, settings)
        b, _ = maml.meta_gradient(theirs, params, task, settings)
        for name in params:
            torch.testing.assert_close(a[name], b[name], rtol=1e-12, atol=1e-14)
