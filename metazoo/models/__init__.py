"""Models used as pure functions of a parameter dict.

Any ``nn.Module`` works: :func:`make_loss` turns it into ``loss(params, x, y) -> scalar``
through ``torch.func.functional_call``, so the module itself is never copied or mutated.
:func:`make_model` builds a built-in model or one from the user's code
(``package.module:factory``), both through the same factory signature
``factory(input_shape, output_size)``. BatchNorm uses batch statistics and no running
buffers; a module that would update its buffers in place is refused (:func:`check_buffers`).
"""

from __future__ import annotations

import importlib
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
        if downsample == "max" and image_size < 16:
            raise ValueError(f"conv4 max-pools four times, so images must be at least 16×16; "
                             f"got {image_size}×{image_size} (choose conv4-stride for these)")
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


def _flat_inputs(name: str, input_shape: tuple[int, ...]) -> int:
    if len(input_shape) != 1:
        raise ValueError(f"model {name!r} takes inputs that are vectors [D], but this task's "
                         f"inputs have shape {list(input_shape)}; choose conv4 or conv4-stride "
                         "for images (--model)")
    return input_shape[0]


def _conv4(downsample: str, hidden: int = 64):
    name = {("max", 64): "conv4", ("stride", 64): "conv4-stride"}.get((downsample, hidden),
                                                                       f"conv4-{hidden}")

    def build(input_shape: tuple[int, ...], output_size: int) -> nn.Module:
        if len(input_shape) != 3 or input_shape[1] != input_shape[2]:
            raise ValueError(f"model {name!r} takes square images [C, H, H], but this task's "
                             f"inputs have shape {list(input_shape)}; choose mlp or linear for "
                             "vectors (--model)")
        channels, size, _ = input_shape
        return Conv4(output_size, in_channels=channels, hidden=hidden, downsample=downsample,
                     image_size=size)

    return build


#: name → factory(input_shape, output_size) for the built-in models: the same signature as a
#: user's ``--model package.module:factory`` (see :func:`make_model`).
MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": lambda input_shape, output_size: MLP(
        (_flat_inputs("mlp", input_shape), 40, 40, output_size)),
    "linear": lambda input_shape, output_size: nn.Linear(
        _flat_inputs("linear", input_shape), output_size),
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


__all__ = [
    "MLP",
    "MODELS",
    "LossFn",
    "Params",
    "build_model",
    "check_buffers",
    "initial_params",
    "linear_model",
    "make_loss",
    "make_model",
    "make_predict",
    "resolve_factory",
    "task_shapes",
]
