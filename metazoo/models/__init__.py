"""Models used as pure functions of a parameter dict.

Any ``nn.Module`` works: :func:`make_loss` turns it into ``loss(params, x, y) -> scalar``
through ``torch.func.functional_call``, so the module itself is never copied or mutated.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

Params = dict[str, torch.Tensor]
LossFn = Callable[[Params, torch.Tensor, torch.Tensor], torch.Tensor]


class MLP(nn.Sequential):
    """Fully connected ReLU network; the default ``(1, 40, 40, 1)`` is the MAML sinusoid net."""

    def __init__(self, sizes: tuple[int, ...] = (1, 40, 40, 1)) -> None:
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(f"MLP sizes must be at least two positive widths, got {sizes}")
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)


def linear_model(dim: int) -> nn.Module:
    """A linear regressor ``x ↦ w·x + b`` (quadratic losses, closed-form meta-gradients)."""
    return nn.Linear(dim, 1)


#: name → factory(task) for the built-in models.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": lambda task: MLP((1, 40, 40, 1)),
    "linear": lambda task: linear_model(task.dim),
}


def make_model(name: str, task) -> nn.Module:
    """Build the built-in model registered as ``name`` sized for ``task``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name](task)


def initial_params(model: nn.Module) -> Params:
    """The module's trainable parameters as a dict of detached tensors (θ₀)."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _mean_squared_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # Written out rather than F.mse_loss: in torch 2.13 the forward-mode derivative of
    # mse_loss's backward fails ("ZeroTensors are immutable"), which breaks the
    # forward-over-reverse Hessian-vector products that iMAML and the analysis use.
    return (prediction - target).pow(2).mean()


def _criterion(loss: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if loss == "mse":
        return _mean_squared_error
    if loss == "cross_entropy":
        return F.cross_entropy
    raise ValueError(f"unknown loss {loss!r}; choose 'mse' or 'cross_entropy'")


def make_loss(model: nn.Module, loss: str = "mse") -> LossFn:
    """Return the pure function ``(params, x, y) -> mean loss`` of ``model``.

    Buffers (if the module has any) are read from the module as constants; parameters
    come only from ``params``, so gradients with respect to them are well defined under
    ``torch.func`` transforms.
    """
    criterion = _criterion(loss)
    buffers = dict(model.named_buffers())

    def loss_fn(params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        prediction = functional_call(model, (params, buffers), (x,))
        return criterion(prediction, y)

    return loss_fn


def make_predict(model: nn.Module) -> Callable[[Params, torch.Tensor], torch.Tensor]:
    """Return ``(params, x) -> model output`` (used for accuracy and plots)."""
    buffers = dict(model.named_buffers())
    return lambda params, x: functional_call(model, (params, buffers), (x,))


__all__ = [
    "MLP",
    "MODELS",
    "LossFn",
    "Params",
    "initial_params",
    "linear_model",
    "make_loss",
    "make_model",
    "make_predict",
]
