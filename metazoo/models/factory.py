"""Models by name: the built-in factories and the user's own (``package.module:factory``),
all called as ``factory(input_shape, output_size)`` with the shapes a task gives
(:func:`task_shapes`); a user's module is checked once built (its forward probed).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
from torch import nn

from metazoo.models.nets import MLP, Conv4


def _flat_inputs(name: str, input_shape: tuple[int, ...]) -> int:
    if len(input_shape) != 1:
        raise ValueError(f"model {name!r} takes inputs that are vectors [D], but this task's "
                         f"inputs have shape {list(input_shape)}; choose conv4 or conv4-stride "
                         "for images (--model)")
    return input_shape[0]


def _mlp(input_shape: tuple[int, ...], output_size: int) -> nn.Module:
    """MLP, D-40-40-output with ReLUs (the MAML paper's sinusoid net); vector inputs [D]."""
    return MLP((_flat_inputs("mlp", input_shape), 40, 40, output_size))


def _linear(input_shape: tuple[int, ...], output_size: int) -> nn.Module:
    """One linear layer; vector inputs [D]."""
    return nn.Linear(_flat_inputs("linear", input_shape), output_size)


def _conv4(downsample: str, hidden: int = 64):
    name = {("max", 64): "conv4", ("stride", 64): "conv4-stride"}.get((downsample, hidden),
                                                                       f"conv4-{hidden}")
    blocks = (f"[3×3 conv, {hidden} filters, BatchNorm, ReLU, 2×2 max-pool]" if downsample == "max"
              else f"[3×3 conv of stride 2, {hidden} filters, BatchNorm, ReLU], mean over space")

    def build(input_shape: tuple[int, ...], output_size: int) -> nn.Module:
        if len(input_shape) != 3 or input_shape[1] != input_shape[2]:
            raise ValueError(f"model {name!r} takes square images [C, H, H], but this task's "
                             f"inputs have shape {list(input_shape)}; choose mlp or linear for "
                             "vectors (--model)")
        channels, size, _ = input_shape
        return Conv4(output_size, in_channels=channels, hidden=hidden, downsample=downsample,
                     image_size=size)

    build.__doc__ = f"Conv4: 4 × {blocks}, linear head; images [C, H, H]."
    return build


#: name → factory(input_shape, output_size) for the built-in models: the same signature as a
#: user's ``--model package.module:factory`` (see :func:`make_model`). The first line of a
#: factory's docstring describes it (``metazoo models``).
MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": _mlp,
    "linear": _linear,
    "conv4": _conv4("max"),
    "conv4-stride": _conv4("stride"),
    # The MAML paper's mini-ImageNet net (Finn et al., 2017, section 5.2): 32 filters, max-pooling.
    "conv4-32": _conv4("max", hidden=32),
}


def task_shapes(task) -> tuple[tuple[int, ...], int]:
    """``(input_shape, output_size)`` of a task distribution's examples.

    Read off one sampled task (from a generator of its own, so no training stream moves):
    the input shape is an example's shape (``[1]`` for sinusoid, ``[1, 28, 28]`` for
    Omniglot); the output size is the number of classes per task for classification
    (``n_way``) and the target's trailing size for regression (``1``).
    """
    batch = task.sample(1, torch.Generator().manual_seed(0))
    input_shape = tuple(batch.support_x.shape[2:])
    if task.loss == "cross_entropy":
        output_size = getattr(task, "n_way", None) or int(batch.support_y.max()) + 1
    else:
        output_size = batch.support_y.shape[-1] if batch.support_y.dim() > 2 else 1
    return input_shape, int(output_size)


def _one_line(error: BaseException, limit: int = 300) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def resolve_factory(spec: str) -> Callable[..., nn.Module]:
    """The model factory named by ``spec``: a built-in name or ``package.module:factory``.

    Raises:
        ValueError: in one line, when the name is unknown, the module cannot be imported,
            or it has no such callable attribute.
    """
    if spec in MODELS:
        return MODELS[spec]
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"unknown model {spec!r}; choose one of: {', '.join(sorted(MODELS))}, "
                         "or name your own factory as package.module:factory (--model)")
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as error:  # an ImportError, or whatever its code raised
        raise ValueError(f"model {spec!r}: cannot import module {module_name!r} "
                         f"({_one_line(error)}); install it, or run from the folder that holds "
                         "it, or add that folder to PYTHONPATH (--model)") from error
    factory = module
    for part in attribute.split("."):
        if not hasattr(factory, part):
            raise ValueError(f"model {spec!r}: module {module_name!r} has no attribute "
                             f"{attribute!r}; name a function or class defined in it (--model)")
        factory = getattr(factory, part)
    if not callable(factory):
        raise ValueError(  # noqa: TRY004 - bad input: the CLI reports ValueErrors in one line
            f"model {spec!r}: {attribute!r} is a {type(factory).__name__}, not a function or "
            "class (--model)")
    return factory


def make_model(name: str, task) -> nn.Module:
    """Build the model ``name`` sized for ``task``.

    ``name`` is a built-in (:data:`MODELS`) or ``package.module:factory``, a callable of the
    user's code. Either is called as::

        factory(input_shape=(D,) or (C, H, W), output_size=n_way or target size)

    with the values of :func:`task_shapes`, and must return an ``nn.Module`` whose forward
    maps a batch ``[B, *input_shape]`` to ``[B, output_size]`` (logits for classification,
    predictions for regression). Its parameters are θ; it is used as a pure function (see
    :func:`make_loss`), so its buffers must not change in a forward pass.

    Raises:
        ValueError: in one line, for an unknown name, a factory that cannot be imported or
            raises, or that returns something other than a module with parameters.
    """
    input_shape, output_size = task_shapes(task)
    return build_model(name, input_shape, output_size)


def build_model(name: str, input_shape: tuple[int, ...], output_size: int) -> nn.Module:
    """Build the model ``name`` for inputs of ``input_shape`` and ``output_size`` outputs
    (:func:`make_model` without a task: what a trained run is rebuilt from).

    Raises:
        ValueError: as :func:`make_model`.
    """
    factory = resolve_factory(name)
    input_shape, output_size = tuple(int(n) for n in input_shape), int(output_size)
    if name in MODELS:  # ours: their ValueErrors already say what to do
        return factory(input_shape=input_shape, output_size=output_size)
    call = f"{name.partition(':')[2]}(input_shape={input_shape}, output_size={output_size})"
    try:
        model = factory(input_shape=input_shape, output_size=output_size)
    except (Exception, SystemExit) as error:  # user code: a failure of any kind is one line
        raise ValueError(f"model {name!r}: {call} raised {_one_line(error)} (--model)") from error
    if not isinstance(model, nn.Module):
        raise ValueError(  # noqa: TRY004 - bad input: the CLI reports ValueErrors in one line
            f"model {name!r}: {call} returned a {type(model).__name__}, not a torch.nn.Module "
            "(--model)")
    if not any(True for _ in model.parameters()):
        raise ValueError(f"model {name!r}: {call} returned a module with no parameters, so "
                         "there is nothing to meta-learn (--model)")
    _probe_forward(name, model, input_shape, output_size)
    return model


def _probe_forward(name: str, model: nn.Module, input_shape: tuple[int, ...],
                   output_size: int) -> None:
    """Run a user model once on a batch of two zero inputs: its forward must return one
    tensor ``[2, output_size]``, so that a model that does not fit fails here, in one line
    naming it, rather than deep inside an algorithm."""
    dtype = next(model.parameters()).dtype
    batch = torch.zeros(2, *input_shape, dtype=dtype)  # [2, *input_shape]
    shape = f"[B, {', '.join(map(str, input_shape))}]"
    try:
        with torch.no_grad():
            output = model(batch)
    except (Exception, SystemExit) as error:
        raise ValueError(f"model {name!r}: its forward on a batch {shape} of zeros raised "
                         f"{_one_line(error)} (--model)") from error
    if not isinstance(output, torch.Tensor):
        raise ValueError(  # noqa: TRY004 - bad input: the CLI reports ValueErrors in one line
            f"model {name!r}: its forward returned a {type(output).__name__}, not a tensor "
            f"[B, {output_size}] (--model)")
    if tuple(output.shape) != (2, output_size):
        raise ValueError(f"model {name!r}: its forward maps {shape} to {list(output.shape)} "
                         f"for B = 2, not to [B, {output_size}] (--model)")


__all__ = ["MODELS", "build_model", "make_model", "resolve_factory", "task_shapes"]
