"""Models used as pure functions of a parameter dict.

Any ``nn.Module`` works: :func:`make_loss` turns it into ``loss(params, x, y) -> scalar``
through ``torch.func.functional_call``, so the module itself is never copied or mutated.
:func:`make_model` builds a built-in model or one from the user's code
(``package.module:factory``), both through the same factory signature
``factory(input_shape, output_size)``. BatchNorm uses batch statistics and no running
buffers; a module that would update its buffers in place is refused (:func:`check_buffers`).

The package holds one module per job: :mod:`~metazoo.models.nets` (the built-in networks),
:mod:`~metazoo.models.factory` (models by name, the user's ``package.module:factory``, and
the shapes a task gives them) and :mod:`~metazoo.models.functional` (the pure loss and
prediction functions). Their public names are importable from here.
"""

from metazoo.models.factory import MODELS, build_model, make_model, resolve_factory, task_shapes
from metazoo.models.functional import (
    check_buffers,
    initial_params,
    make_loss,
    make_predict,
)
from metazoo.models.nets import MLP, Conv4
from metazoo.types import LossFn, Params

__all__ = [
    "MLP",
    "MODELS",
    "Conv4",
    "LossFn",
    "Params",
    "build_model",
    "check_buffers",
    "initial_params",
    "make_loss",
    "make_model",
    "make_predict",
    "resolve_factory",
    "task_shapes",
]
