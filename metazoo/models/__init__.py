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

from metazoo.types import LossFn, Params


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


class Conv4(nn.Module):
    """The four-block convolutional net of few-shot classification (Vinyals et al., 2016;
    Finn et al., 2017).

    Each block: 3×3 convolution with ``hidden`` filters, BatchNorm, ReLU, then either 2×2
    max-pooling (``downsample="max"``; computed as pooling then ReLU, the same function with
    the same gradients, cheaper) or, in the variant the MAML paper used for Omniglot, a
    stride-2 convolution instead of pooling (``downsample="stride"``), whose last feature map
    is averaged over space. A linear head maps the features to ``n_way`` logits.

    BatchNorm always normalises with the statistics of the batch it is given and keeps no
    running averages (``track_running_stats=False``): the meta-learning convention (a task's
    support or query set is the batch), and the form that is a pure function under ``vmap``.
    """

    def __init__(self, n_way: int, in_channels: int = 1, hidden: int = 64,
                 downsample: str = "max", image_size: int = 28) -> None:
        super().__init__()
        if downsample not in ("max", "stride"):
            raise ValueError(f"downsample must be 'max' or 'stride', got {downsample!r}")
        if n_way < 1 or hidden < 1:
            raise ValueError("n_way and hidden must be positive")
        blocks: list[nn.Module] = []
        channels, size = in_channels, image_size
        for _ in range(4):
            stride = 2 if downsample == "stride" else 1
            blocks += [nn.Conv2d(channels, hidden, 3, stride=stride, padding=1),
                       nn.BatchNorm2d(hidden, track_running_stats=False)]
            if downsample == "max":
                # Pooling before the ReLU gives the same values and the same gradients (the
                # ReLU is monotone and both pick the first maximum of a window), and the ReLU
                # then runs on a quarter of the elements. Its forward and backward took ~7% of a
                # MAML iteration on 28×28 inputs; the measured gain is ~2% (near the noise).
                blocks += [nn.MaxPool2d(2), nn.ReLU()]
                size //= 2
            else:
                blocks.append(nn.ReLU())
                size = (size + 1) // 2
            channels = hidden
        self.features = nn.Sequential(*blocks)
        self.downsample = downsample
        features = hidden if downsample == "stride" else hidden * size * size
        self.head = nn.Linear(features, n_way)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # [B, hidden, s, s]
        h = h.mean((-2, -1)) if self.downsample == "stride" else h.flatten(1)
        return self.head(h)  # [B, n_way]


def linear_model(dim: int) -> nn.Module:
    """A linear regressor ``x ↦ w·x + b`` (quadratic losses, closed-form meta-gradients)."""
    return nn.Linear(dim, 1)


def _conv4(task, hidden: int = 64, downsample: str = "max") -> Conv4:
    """A Conv4 sized by the task: its classes and its images' channels and side."""
    channels, height, width = getattr(task, "input_shape", (1, 28, 28))
    if height != width:
        raise ValueError(f"conv4 takes square images; the task's are {height}×{width}")
    return Conv4(task.n_way, channels, hidden, downsample, height)


def _mlp(task) -> MLP:
    """The sinusoid net, or for a classification task over vectors ``[D]``: D-40-40-n_way."""
    shape = getattr(task, "input_shape", None)
    if shape is None:
        return MLP((1, 40, 40, 1))
    if len(shape) != 1:
        raise ValueError(f"mlp takes vectors; the task's inputs are shaped {list(shape)} "
                         "(use a conv4 for images)")
    return MLP((shape[0], 40, 40, task.n_way))


#: name → factory(task) for the built-in models.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": _mlp,
    "linear": lambda task: linear_model(task.dim),
    "conv4": _conv4,
    "conv4-stride": lambda task: _conv4(task, downsample="stride"),
    # The MAML paper's mini-ImageNet net (Finn et al., 2017, section 5.2): 32 filters, max-pooling.
    "conv4-32": lambda task: _conv4(task, hidden=32),
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
