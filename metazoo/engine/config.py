"""The resolved configuration of a training run (stored beside the weights)."""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass
from typing import Any

import torch

from metazoo.algorithms import ALGORITHMS, DEFAULT_ALGORITHM, Method, Settings, get_algorithm
from metazoo.core.batch import STRATEGIES
from metazoo.options import check_field_types, option, stored
from metazoo.tasks import TASKS

#: Largest seed: generators take 64-bit seeds, and a run also seeds with seed + 1 and + 2.
MAX_SEED = 2**62
#: Most inner or test steps per task: each is a step of a Python loop in every iteration.
MAX_STEPS = 10_000

def check_steps(name: str, value: Any) -> None:
    """Refuse a number of inner or test steps that is not an integer from 0 to
    :data:`MAX_STEPS` (each step is a step of a Python loop: more would not finish)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_STEPS:
        raise ValueError(f"{name} must be an integer from 0 to {MAX_STEPS:,}, got "
                         f"{_short(value)}")


#: Default model for each built-in task.
DEFAULT_MODEL = {"sinusoid": "mlp", "linear": "linear", "omniglot": "conv4-stride",
                 "air-quality": "mlp", "folder": "conv4", "faces": "conv4",
                 "mini-imagenet": "conv4-32", "arrays": "mlp"}


@dataclass(frozen=True)
class TrainConfig:
    """Every option of ``metazoo train``; defaults follow the MAML paper's sinusoid setup."""

    algorithm: str = option(DEFAULT_ALGORITHM, "meta-learner")
    task: str = option("sinusoid", "task family")
    model: str = option(
        "", "model: mlp, linear, conv4, conv4-stride, conv4-32, or package.module:factory from your "
        "code, called as factory(input_shape=..., output_size=...) and returning an nn.Module "
        "(empty: the task's default, mlp for sinusoid)")
    n_way: int = option(5, "classes per task (classification tasks only)")
    k_shot: int = option(10, "support examples per task (per class for classification)")
    query_shots: int = option(10, "query examples per task (per class for classification)")
    data_dir: str = option("", "data folder (omniglot: empty is $METAZOO_OMNIGLOT_DIR or a "
                               "download; air-quality: empty is $METAZOO_AIR_QUALITY_DIR; folder: "
                               "<dir>/<class>/<image>; arrays: inputs.npy and labels.npy)")
    split: str = option("", "how the data set is split into train and test tasks (empty: the "
                            "task's default: vinyals for omniglot, years for air-quality)")
    image_size: int = option(0, "image tasks: decode images to this many pixels square (0: the "
                                "task's default: 84, faces 32)")
    channels: int = option(0, "image tasks: 1 (grey) or 3 (RGB) (0: the task's default)")
    stations: list = dataclasses.field(default_factory=list, metadata={
        "help": "air-quality: the stations to use (empty: all twelve, each of which must have "
                "its file in the data folder)", "formerly": "", "items": str})
    split_seed: int = option(0, "folder, faces, arrays: seed of the class split by fractions")
    split_fractions: list = option([0.6, 0.15, 0.25], "folder, faces, arrays: train, val, test "
                                                      "fractions of the classes")
    inner_steps: int = option(-1, "inner steps k while meta-training (-1: the algorithm's own "
                                  "default)")
    inner_lr: float = option(0.0, "inner step size α (0: the algorithm's own default)")
    algorithm_options: dict = option({}, "the algorithm's own settings by field name, e.g. "
                                         "{\"cg_steps\": 5} for imaml (see --help)")
    outer_optimizer: str = option("adam", "outer optimizer: adam or sgd")
    outer_lr: float = option(1e-3, "outer step size β (Reptile's ε with sgd)")
    outer_eps: float = option(1e-8, "ε of the outer Adam (iMAML's reference code: 1e-3)")
    lr_schedule: str = option("constant", "outer step size schedule: constant, or linear decay to 0")
    meta_batch: int = option(25, "tasks per meta-iteration")
    iterations: int = option(10_000, "meta-iterations (at most, with --time-budget)")
    time_budget: float = option(0.0, "stop once meta-training has taken this many seconds (0: none)")
    budget_clock: str = option(
        "cpu", "what --time-budget counts: cpu (this process's CPU seconds, all threads: equal "
        "compute, even when other jobs share the machine) or wall (elapsed)", absent="wall")
    seed: int = option(0, "seed of the training task stream and of θ₀")
    device: str = option("cpu", "torch device, e.g. cpu or cuda")
    dtype: str = option("float32", "float32 or float64")
    tf32: bool = option(False, "on CUDA, let convolutions and matrix products use TF32: faster "
                               "(MAML on Conv4: ~1.7× on an H200), but meta-gradients then "
                               "differ from float32 by up to tens of percent")
    retain_memory: bool = option(
        True, "CPU: keep freed memory in the process for reuse (glibc malloc) instead of "
        "paging it in again each iteration; faster on convolutional nets, but resident "
        "memory stays at its peak")
    strategy: str = option("auto", "over tasks: vmap, loop, or auto (time both on one batch, keep the faster)")
    chunk_size: int = option(0, "vmap at most this many tasks at once (0: all)")
    skip_nonfinite: bool = option(False, "skip a batch with a non-finite meta-gradient instead of stopping")
    log_every: int = option(100, "write a log line every this many iterations")
    checkpoint_every: int = option(1000, "write a checkpoint every this many iterations")
    eval_tasks: int = option(600, "held-out tasks for the final evaluation")
    eval_k_shot: int = option(0, "support examples per held-out task (0: as k_shot)")
    eval_query_shots: int = option(0, "query examples per held-out task (0: as query_shots)")
    eval_steps: list = option([0, 1, 5, 10], "report after each of these numbers of test steps")
    eval_seed: int = option(12345, "seed of the held-out tasks (same for every run to pair results)")
    val_every: int = option(
        0, "every this many iterations, score θ on val_tasks fixed tasks of the split's "
        "validation part (where a family has none, its test distribution drawn with "
        "eval_seed + 1, never the test tasks) and append it to validation.jsonl with "
        "the budget seconds so far: a learning curve (0: never; not counted in the budget)")
    val_tasks: int = option(100, "tasks of each validation score")
    eval_transductive: bool = option(
        True, "classify a task's queries together, BatchNorm statistics over all of them "
        "(transductive); off: each query with the support set alone (non-transductive)")
    tensorboard: bool = option(
        False, "also write TensorBoard event files to <out>/tensorboard: the logged training "
        "loss and seconds per iteration, each validation point, and the options with the "
        "final results as hyperparameters (needs the tensorboard package)")

    def __post_init__(self) -> None:
        def positive(name: str) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

        check_field_types(self)
        get_algorithm(self.algorithm)
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of: {', '.join(sorted(TASKS))}")
        if not self.split:  # record the task's own default, so config.json names the split used
            default = inspect.signature(TASKS[self.task]).parameters.get("split")
            if default is not None and isinstance(default.default, str):
                object.__setattr__(self, "split", default.default)
        for name in ("n_way", "k_shot", "query_shots", "meta_batch", "iterations", "log_every",
                     "checkpoint_every", "eval_tasks", "val_tasks"):
            positive(name)
        for name in ("eval_k_shot", "eval_query_shots"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be an integer >= 0 (0: same as training), got "
                                 f"{getattr(self, name)!r}")
        if not (math.isfinite(self.outer_lr) and self.outer_lr > 0):
            raise ValueError(f"outer_lr must be a positive number, got {self.outer_lr!r}")
        if not (math.isfinite(self.outer_eps) and self.outer_eps > 0):
            raise ValueError(f"outer_eps must be a positive number, got {self.outer_eps!r}")
        if self.outer_optimizer not in ("adam", "sgd"):
            raise ValueError(f"outer_optimizer must be 'adam' or 'sgd', got {self.outer_optimizer!r}")
        if self.lr_schedule not in ("constant", "linear"):
            raise ValueError(f"lr_schedule must be 'constant' or 'linear', got {self.lr_schedule!r}")
        if self.strategy not in (*STRATEGIES, "auto"):
            raise ValueError(f"strategy must be one of vmap, loop, auto; got {self.strategy!r}")
        if not (math.isfinite(self.time_budget) and self.time_budget >= 0):
            raise ValueError(f"time_budget must be >= 0 seconds, got {self.time_budget!r}")
        if self.budget_clock not in ("wall", "cpu"):
            raise ValueError(f"budget_clock must be wall or cpu, got {self.budget_clock!r}")
        if not isinstance(self.val_every, int) or self.val_every < 0:
            raise ValueError(f"val_every must be an integer >= 0 (0: never), got {self.val_every!r}")
        if self.chunk_size < 0:
            raise ValueError(f"chunk_size must be >= 0 (0 means no chunking), got {self.chunk_size}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if not self.eval_steps or any(not isinstance(s, int) or s < 0 for s in self.eval_steps):
            raise ValueError(f"eval_steps must be integers >= 0, got {_short(self.eval_steps)}")
        # Validate the algorithm's own options and store them resolved (defaults filled in,
        # former names under today's), so that config.json records every setting the run used.
        shared = {"inner_steps", "inner_lr"}
        if shared & set(self.algorithm_options):
            raise ValueError("algorithm_options must not hold inner_steps or inner_lr: they are "
                             "options of the run itself")
        settings = self.settings()
        resolved = {name: value for name, value in dataclasses.asdict(settings).items()
                    if name not in shared}
        object.__setattr__(self, "algorithm_options", resolved)
        object.__setattr__(self, "inner_steps", settings.inner_steps)
        object.__setattr__(self, "inner_lr", settings.inner_lr)
        self._check_bounds()

    def _check_bounds(self) -> None:
        """Refuse values that pass the type checks but cannot run: seeds a generator cannot
        take, step counts that would not finish, step sizes the dtype cannot hold, and task
        options the task does not have (they would be silently ignored)."""
        for name in ("seed", "eval_seed"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_SEED:
                raise ValueError(f"{name} must be an integer from 0 to 2**62, got {_short(value)}")
        if self.inner_steps > MAX_STEPS:
            raise ValueError(f"inner_steps must be at most {MAX_STEPS:,}, got "
                             f"{_short(self.inner_steps)}")
        if any(isinstance(s, bool) or s > MAX_STEPS for s in self.eval_steps):
            raise ValueError(f"eval_steps must be integers from 0 to {MAX_STEPS:,}, got "
                             f"{_short(self.eval_steps)}")
        largest = torch.finfo(self.torch_dtype).max
        for name in ("inner_lr", "outer_lr"):
            if getattr(self, name) > largest:
                raise ValueError(f"{name} must be at most {largest:.3g}, the largest {self.dtype}, "
                                 f"got {getattr(self, name)!r}")
        accepted = set(inspect.signature(TASKS[self.task]).parameters)
        for name, parameters in _TASK_FIELDS.items():
            if not accepted & set(parameters) and getattr(self, name) != _DEFAULTS[name]:
                takers = sorted(task for task, factory in TASKS.items()
                                if set(inspect.signature(factory).parameters) & set(parameters))
                raise ValueError(f"{name} does not apply to task {self.task!r} (only to "
                                 f"{', '.join(takers) or 'no task'}); leave it out")

    @property
    def model_name(self) -> str:
        return self.model or DEFAULT_MODEL.get(self.task, "mlp")

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def settings(self) -> Settings:
        """The algorithm's settings (inner loop plus its own options).

        ``inner_steps`` −1 and ``inner_lr`` 0 take the algorithm's own defaults. An option the
        algorithm does not take is refused, naming the algorithm's options.
        """
        inner = {}
        if self.inner_steps != -1:
            inner["inner_steps"] = self.inner_steps
        if self.inner_lr != 0:
            inner["inner_lr"] = self.inner_lr
        return get_algorithm(self.algorithm).make_settings(**inner, **self.algorithm_options)

    def method(self) -> Method:
        """The algorithm bound to its settings (:meth:`settings`)."""
        return get_algorithm(self.algorithm).bind(self.settings())

    def task_options(self, evaluation: bool = False, part: str = "") -> dict[str, Any]:
        """Options for the task factory: only those its signature takes.

        Training tasks come from the split's train part, held-out ones (``evaluation``) from
        its test part, or from ``part`` when given (the validation curve uses ``"val"``).
        """
        options = {
            "n_way": self.n_way,
            "k_shot": (self.eval_k_shot or self.k_shot) if evaluation else self.k_shot,
            "query_shots": (self.eval_query_shots or self.query_shots) if evaluation
            else self.query_shots,
            # Task families call their data folder data_dir (air-quality: root).
            "data_dir": self.data_dir or None,
            "root": self.data_dir or None,
            "part": part or ("test" if evaluation else "train"),
            "split_seed": self.split_seed,
            "split_fractions": tuple(self.split_fractions),
            "stations": tuple(self.stations),
            # 0 leaves the task's own default.
            **{name: getattr(self, name) for name in ("image_size", "channels")
               if getattr(self, name)},
        }
        if self.split:
            options["split"] = self.split
        accepted = inspect.signature(TASKS[self.task]).parameters
        return {name: value for name, value in options.items() if name in accepted}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config option(s): {', '.join(sorted(unknown))}")
        # A stored config holds every option its run used; one added since gets the value
        # runs used before it existed, so that a run reads back as it was trained.
        data = stored(cls, data)
        if data.get("algorithm") in ALGORITHMS and "algorithm_options" in data:
            data = {**data, "algorithm_options": get_algorithm(data["algorithm"]).stored_options(
                dict(data["algorithm_options"]))}
        return cls(**data)

    def differences(self, other: TrainConfig, ignore: tuple[str, ...] = ()) -> list[str]:
        """Names of options whose values differ (for refusing an inconsistent resume)."""
        return [
            f.name for f in dataclasses.fields(self)
            if f.name not in ignore and getattr(self, f.name) != getattr(other, f.name)
        ]


#: Options that reach the task factory (see task_options), by the factory parameters they
#: become: set on a task that takes none of them, they would be silently ignored.
_TASK_FIELDS = {"n_way": ("n_way",), "split": ("split",), "data_dir": ("data_dir", "root"),
                "split_seed": ("split_seed",), "split_fractions": ("split_fractions",),
                "stations": ("stations",),
                "image_size": ("image_size",), "channels": ("channels",)}

_DEFAULTS = {spec.name: spec.default if spec.default is not dataclasses.MISSING
             else spec.default_factory() for spec in dataclasses.fields(TrainConfig)}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"
