"""A module used as a pure function of a parameter dict, through
``torch.func.functional_call``: the loss and prediction functions, and the checks that keep
them pure (buffers never written in place, params exactly the module's).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metazoo.types import LossFn, Params


def initial_params(model: nn.Module) -> Params:
    """The module's trainable parameters as a dict of detached tensors (θ₀)."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _mean_squared_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # Written out rather than F.mse_loss: in torch 2.13 the forward-mode derivative of
    # mse_loss's backward fails ("ZeroTensors are immutable"), which breaks the
    # forward-over-reverse Hessian-vector products that iMAML and the analysis use.
    if prediction.shape != target.shape:
        # Broadcasting [S, 1] against [S] would silently give an [S, S] loss.
        raise ValueError(f"the model predicts shape {list(prediction.shape)} but the targets have "
                         f"shape {list(target.shape)}; regression targets carry a trailing "
                         "output axis, [S, 1] for one output")
    return (prediction - target).pow(2).mean()


def _criterion(loss: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if loss == "mse":
        return _mean_squared_error
    if loss == "cross_entropy":
        return F.cross_entropy
    raise ValueError(f"unknown loss {loss!r}; choose 'mse' or 'cross_entropy'")


def check_buffers(model: nn.Module) -> None:
    """Refuse a module whose forward pass would update its buffers in place.

    Parameters come from the params dict; buffers are read from the module as constants,
    shared by every task. A normalisation layer that keeps running statistics
    (``track_running_stats=True``, in training mode) writes them on every forward pass:
    in a loop over tasks that silently mixes tasks' statistics into the module, and under
    ``vmap`` PyTorch fails. Such a layer in eval mode reads its stored statistics as
    constants, which is pure, and is accepted.

    Raises:
        ValueError: naming the first such submodule and the fix.
    """
    for name, module in model.named_modules():
        if (isinstance(module, nn.modules.batchnorm._NormBase) and module.training
                and module.track_running_stats):
            raise ValueError(
                f"model submodule {name or '(top)'!r} ({type(module).__name__}) keeps running "
                "statistics (track_running_stats=True), which every forward pass would update "
                "in place; build it with track_running_stats=False (each batch, i.e. a task's "
                "support or query set, is normalised with its own statistics), or call .eval() "
                "on it to use its stored statistics as constants")


class _Signature:
    """The names and shapes of a module's parameters, to check a params dict against.

    ``functional_call`` silently takes a missing parameter from the module itself, as a
    constant with no gradient, and a wrongly shaped one may broadcast. So every call checks
    the dict first: a few key and shape comparisons (under ``vmap``, of per-task shapes).
    """

    def __init__(self, model: nn.Module) -> None:
        self.shapes = {name: p.shape for name, p in model.named_parameters()}

    def check(self, params: Params) -> None:
        if params.keys() == self.shapes.keys() and all(
                params[name].shape == shape for name, shape in self.shapes.items()):
            return
        missing = [name for name in self.shapes if name not in params]
        extra = [name for name in params if name not in self.shapes]
        shaped = [f"{name} is {list(params[name].shape)}, not {list(shape)}"
                  for name, shape in self.shapes.items()
                  if name in params and params[name].shape != shape]
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {', '.join(extra)}"] if extra else []) + shaped
        raise ValueError("params do not match the model's parameters: " + "; ".join(problems)
                         + "; pass exactly the module's parameters, e.g. initial_params(model)")


def _pure_call(model: nn.Module) -> Callable[[Params, torch.Tensor], torch.Tensor]:
    """``(params, x) -> model(x)`` with θ from ``params``, after checking both the module's
    buffers (once) and each call's params; a buffer changed by a call is refused too."""
    check_buffers(model)
    signature = _Signature(model)
    buffers = dict(model.named_buffers())

    def call(params: Params, x: torch.Tensor) -> torch.Tensor:
        signature.check(params)
        if not buffers:
            return functional_call(model, params, (x,))
        # Fresh copies: an in-place write then lands on a tensor of this call (inside a
        # torch.func transform, writing to a captured one fails with a cryptic error),
        # bumps its version counter, and is refused below; the module's own stay intact.
        copies = {name: b.clone() for name, b in buffers.items()}
        output = functional_call(model, (params, copies), (x,))
        changed = [name for name, b in copies.items() if b._version != 0]
        if changed:
            raise ValueError(f"the model's forward pass changed its buffer(s) {', '.join(changed)} "
                             "in place; buffers are shared by every task and must stay constant: "
                             "compute such state from the input instead, or keep it out of "
                             "forward")
        return output

    return call


def make_loss(model: nn.Module, loss: str = "mse") -> LossFn:
    """Return the pure function ``(params, x, y) -> mean loss`` of ``model``.

    Parameters come only from ``params``, which must hold exactly the module's parameter
    names and shapes (anything else is refused, rather than silently using the module's
    own tensor as a constant). Buffers (if the module has any) are read from the module as
    constants, so gradients are well defined under ``torch.func`` transforms.

    BatchNorm: build it with ``track_running_stats=False``. It then normalises each batch
    it is given (a task's support set, or its query set) with that batch's own statistics,
    in training and at test time alike, and keeps no running buffers (the convention of
    MAML and of torch.func's per-sample examples). A module whose buffers a forward pass
    would update in place is refused here (see :func:`check_buffers`), for the loop and
    the ``vmap`` strategy alike.
    """
    criterion = _criterion(loss)
    call = _pure_call(model)

    def loss_fn(params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return criterion(call(params, x), y)

    return loss_fn


def make_predict(model: nn.Module) -> Callable[[Params, torch.Tensor], torch.Tensor]:
    """Return ``(params, x) -> model output`` (used for accuracy and plots), with the same
    checks as :func:`make_loss`."""
    return _pure_call(model)


__all__ = ["check_buffers", "initial_params", "make_loss", "make_predict"]
