"""What a run is built from its config: tasks, model, loss, optimizer and execution strategy.

Building changes nothing outside the objects it returns. The process-wide switches a run
needs (TF32, the allocator) are set by :func:`configure_process`, which the entry point
that starts a run calls (``train``, ``metazoo eval``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from metazoo.algorithms import Method, State
from metazoo.engine.allocator import retain_freed_memory
from metazoo.engine.config import TrainConfig
from metazoo.engine.memory import physical_memory as _physical_memory
from metazoo.messages import brief
from metazoo.models import build_model, initial_params, make_loss, make_predict, task_shapes
from metazoo.tasks import DataError, TaskDistribution, draws_indices, make_task
from metazoo.types import LossFn, Params

#: Device types a run may use (``meta`` tensors hold no data; others are untested).
DEVICE_TYPES = ("cpu", "cuda", "mps")


@dataclass(frozen=True)
class Setup:
    """Everything a run builds from its config (a changed choice is a new ``Setup``:
    ``dataclasses.replace``)."""

    config: TrainConfig
    method: Method
    tasks: TaskDistribution
    eval_tasks: TaskDistribution
    model: nn.Module
    loss: LossFn
    predict: Callable | None
    strategy: str
    val_tasks: tuple[TaskDistribution, int] | None = None
    #: With ``vmap``, at most this many tasks at once: the config's ``chunk_size``, or what
    #: ``strategy="auto"`` chose (:func:`metazoo.engine.strategy.choose_strategy`).
    chunk_size: int | None = None


def build(config: TrainConfig, held_out: str = "test") -> Setup:
    """Build tasks, model and loss for ``config``, refusing what cannot run.

    The held-out tasks come from the split's ``held_out`` part (a search scores on "val").

    Impossible tasks, missing data and batches larger than this machine's memory fail here,
    with the option named, before a run touches its folder. The meta-parameters to train
    start at :func:`initial_meta_params`.
    """
    config = config.resolve()
    # The held-out tasks first: an impossible evaluation is refused before data is loaded.
    eval_tasks = _make_tasks(config, evaluation=True, part=held_out)
    tasks = _make_tasks(config, evaluation=False)
    for evaluation in (False, True):
        _check_memory(config, eval_tasks if evaluation else tasks, evaluation,
                      held_out if evaluation else "")
    model = seeded_model(config, *task_shapes(tasks))
    classification = tasks.loss == "cross_entropy"
    return Setup(
        config, config.method(), tasks, eval_tasks, model,
        make_loss(model, tasks.loss), make_predict(model) if classification else None,
        config.strategy, validation_tasks(config, eval_tasks) if config.val_every else None,
        config.chunk_size,
    )


def seeded_model(config: TrainConfig, input_shape: tuple[int, ...], output_size: int,
                 device: str | None = None) -> nn.Module:
    """The run's model for inputs of ``input_shape`` and ``output_size`` outputs, its weights
    drawn from the run's seed without touching the global RNG, on ``device`` (default: the
    run's) in the run's dtype: how a new run builds it (:func:`build`) and how a stored run
    is rebuilt without its data set (:func:`metazoo.load_run`)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.model, input_shape, output_size)
    return model.to(device=device or config.device, dtype=config.torch_dtype)


def validation_tasks(config: TrainConfig,
                     eval_tasks: TaskDistribution) -> tuple[TaskDistribution, int]:
    """The held-out tasks of the learning curve and the seed that draws them: the split's
    validation part with ``eval_seed``, or, where the family has no parts (e.g. sinusoid), its
    test distribution ``eval_tasks`` with another seed (``eval_seed + 1``), so that the curve
    never scores the test tasks."""
    options = config.task_options(evaluation=True, part="val")
    if "part" not in options:
        return eval_tasks, config.eval_seed + 1
    try:
        return make_task(config.task, **options), config.eval_seed
    except ValueError as error:
        raise ValueError(f"val_every needs the split's validation part: {error}") from error


def initial_meta_params(setup: Setup, device: str | None = None) -> tuple[Params, State]:
    """θ₀ and the carried state the method starts from, from the model's initial parameters:
    the meta-parameters the algorithm trains (θ, and e.g. Meta-SGD's step sizes) and the state
    it carries between meta-iterations (``{}`` for most)."""
    config = setup.config

    def move(tree):
        return {name: move(value) if isinstance(value, dict) else value.to(
            device=device or config.device, dtype=config.torch_dtype)
            for name, value in tree.items()}

    params, state = setup.method.init(initial_params(setup.model))
    return move(params), move(state)


def _make_tasks(config: TrainConfig, evaluation: bool, part: str = "") -> TaskDistribution:
    """The training or held-out tasks. The held-out ones differ by their part of the split and
    by ``eval_k_shot`` and ``eval_query_shots``: where those differ from the training shots,
    an error of theirs names them, unless it is missing or unusable data (a ``DataError``,
    the training tasks' problem too), which is reported as it is."""
    try:
        return make_task(config.task, **config.task_options(evaluation=evaluation, part=part))
    except DataError:
        raise
    except ValueError as error:
        own_shots = (config.eval_k_shot, config.eval_query_shots) != (config.k_shot,
                                                                      config.query_shots)
        if not (evaluation and own_shots):
            raise
        raise ValueError(f"held-out tasks (eval_k_shot={config.eval_k_shot}, eval_query_shots="
                         f"{config.eval_query_shots}): "
                         f"{error}") from error


def held_out_batch(config: TrainConfig) -> int:
    """How many held-out tasks (the final evaluation's, the validation curve's) are drawn
    and scored at once: the vmap chunk, ``chunk_size`` or else ``meta_batch``."""
    return config.meta_batch if config.chunk_size is None else config.chunk_size


def _check_memory(config: TrainConfig, tasks: TaskDistribution, evaluation: bool,
                  part: str = "") -> None:
    """Refuse tasks larger than this machine's memory, before any is drawn: one meta-batch,
    or the held-out tasks (the final evaluation's, or the validation curve's, from the same
    options and another part of the split). Those are drawn and scored a batch at a time
    (:func:`held_out_batch`): a family that draws indices first holds one batch of examples
    and the indices of every task; any other is drawn whole."""
    options = config.task_options(evaluation=evaluation, part=part)
    per_task = _bytes_per_task(config, options)
    count = max(config.eval_tasks, config.val_tasks if config.val_every else 0) if evaluation \
        else config.meta_batch
    needed = count * per_task
    names = "meta_batch, k_shot, query_shots"
    if evaluation:
        names = "eval_tasks, eval_k_shot, eval_query_shots" + (
            " or val_tasks" if config.val_every else "")
    if evaluation and draws_indices(tasks):
        indices = tasks.sample_indices(1, torch.Generator().manual_seed(0))
        needed = (min(count, held_out_batch(config)) * per_task
                  + count * sum(index.nbytes for index in indices))
        names += ", or chunk_size (else meta_batch: the tasks scored at once)"
    available = _physical_memory()
    if available and needed > available:
        raise ValueError(f"{'the held-out tasks' if evaluation else 'one meta-batch'} would take "
                         f"{needed / 2**30:.3g} GiB, more than this machine's "
                         f"{available / 2**30:.3g} GiB of memory; lower {names}")


def _bytes_per_task(config: TrainConfig, options: dict) -> int:
    """The size of one sampled task, from a task of one support and one query example (per
    class), so that it is known before a batch that might not fit is drawn."""
    probe = make_task(config.task, **{**options, "k_shot": 1, "query_shots": 1})
    one = probe.sample(1, torch.Generator().manual_seed(0))
    item = max(torch.empty((), dtype=config.torch_dtype).element_size(),
               one.support_x.element_size())

    def size(x: torch.Tensor, y: torch.Tensor) -> int:
        return x.numel() * item + y.numel() * y.element_size()

    return (options["k_shot"] * size(one.support_x, one.support_y)
            + options["query_shots"] * size(one.query_x, one.query_y))


def configure_process(config: TrainConfig) -> None:
    """Set the process-wide switches a run asks for; the entry point that starts a run calls it.

    PyTorch lets cuDNN convolutions and CUDA matrix products use TF32 by default. On an H200
    that changed MAML's Conv4 meta-gradients by up to 30% (results/gpu-h200.md), so float32
    means float32 unless ``config.tf32``. On the CPU, freed memory is kept for reuse when
    ``config.retain_memory`` (see :mod:`metazoo.engine.allocator`).
    """
    torch.backends.cudnn.allow_tf32 = config.tf32
    torch.backends.cuda.matmul.allow_tf32 = config.tf32
    if config.retain_memory and torch.device(config.device).type == "cpu":
        retain_freed_memory()


def check_device(device: str) -> None:
    """Fail early and clearly on a device this machine does not have."""
    usable = "use cpu, cuda, cuda:N (the N-th GPU) or mps"
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise ValueError(f"device {device!r} is not available here (not a torch device); "
                         f"{usable}") from None
    if kind not in DEVICE_TYPES:
        raise ValueError(f"device {device!r} is not available here (a run computes on "
                         f"{', '.join(DEVICE_TYPES)}); {usable}")
    try:
        torch.empty(0, device=device)
    except Exception as error:
        raise ValueError(f"device {device!r} is not available here ({brief([str(error)])}); "
                         "use cpu") from error


def make_optimizer(config: TrainConfig, params: Params, spent=lambda: 0.0):
    """The outer optimizer over ``params`` and its step-size schedule.

    The linear schedule decays to 0 over the run: over ``iterations``, or, with a time budget,
    over whichever runs out first, so that a protocol sized to a CPU by ``time_budget`` still
    anneals (Reptile's ε → 0). ``spent()`` gives the budget's seconds used so far.
    """
    tensors = list(params.values())
    if config.outer_optimizer == "adam":
        optimizer = torch.optim.Adam(tensors, lr=config.outer_lr, eps=config.outer_eps)
    else:
        optimizer = torch.optim.SGD(tensors, lr=config.outer_lr)
    if config.lr_schedule == "linear":
        def schedule(i: int) -> float:
            done = i / config.iterations
            if config.time_budget:
                done = max(done, spent() / config.time_budget)
            return max(0.0, 1.0 - done)
    else:
        schedule = lambda i: 1.0
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
