"""The configuration of a training run, and its resolution (stored beside the weights).

An option left to "the method's own" or "as in training" is ``None``; :meth:`TrainConfig.resolve`
fills every such option once, and what a run builds from, stores and compares is the resolved
config. No reader finishes an option by itself. Importing this module does not load torch (the
command line builds its flags from these fields); a config's checks load it when one is built.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from metazoo.algorithms import ALGORITHMS, DEFAULT_ALGORITHM, Method, Settings, get_algorithm
from metazoo.options import check_field_types, option, stored
from metazoo.tasks import TASKS

if TYPE_CHECKING:
    import torch

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


#: The options of the inner loop, which the run sets and the algorithm's settings hold.
INNER = ("inner_steps", "inner_lr")

#: What a stored config held, before ``None``, for an option left to its default.
FORMER_UNSET = {"model": "", "split": "", "inner_steps": -1, "inner_lr": 0.0, "chunk_size": 0,
                "eval_k_shot": 0, "eval_query_shots": 0, "image_size": 0,
                "channels": 0}

#: Default model for each built-in task.
DEFAULT_MODEL = {"sinusoid": "mlp", "linear": "linear", "omniglot": "conv4-stride",
                 "air-quality": "mlp", "folder": "conv4", "faces": "conv4",
                 "mini-imagenet": "conv4-32", "arrays": "mlp"}


@dataclass(frozen=True)
class TrainConfig:
    """Every option of ``metazoo train``; defaults follow the MAML paper's sinusoid setup."""

    algorithm: str = option(DEFAULT_ALGORITHM, "meta-learner")
    task: str = option("sinusoid", "task family")
    model: str | None = option(
        None, "model: mlp, linear, conv4, conv4-stride, conv4-32, or package.module:factory from "
        "your code, called as factory(input_shape=..., output_size=...) and returning an "
        "nn.Module (default: the task's, mlp for sinusoid)", kind=str)
    n_way: int = option(5, "classes per task (classification tasks only)")
    k_shot: int = option(10, "support examples per task (per class for classification)")
    query_shots: int = option(10, "query examples per task (per class for classification)")
    data_dir: str = option("", "data folder (omniglot: empty is $METAZOO_OMNIGLOT_DIR or a "
                               "download; air-quality: empty is $METAZOO_AIR_QUALITY_DIR; folder: "
                               "<dir>/<class>/<image>; arrays: inputs.npy and labels.npy)")
    split: str | None = option(None, "how the data set is split into train and test tasks "
                                     "(default: the task's: vinyals for omniglot, years for "
                                     "air-quality)", kind=str)
    image_size: int | None = option(None, "image tasks: decode images to this many pixels "
                                          "square (default: the task's: 84, faces 32)", kind=int)
    channels: int | None = option(None, "image tasks: 1 (grey) or 3 (RGB) (default: the "
                                        "task's)", kind=int)
    stations: list = dataclasses.field(default_factory=list, metadata={
        "help": "air-quality: the stations to use (empty: all twelve, each of which must have "
                "its file in the data folder)", "formerly": "", "items": str})
    split_seed: int = option(0, "folder, faces, arrays: seed of the class split by fractions")
    split_fractions: list = option([0.6, 0.15, 0.25], "folder, faces, arrays: train, val, test "
                                                      "fractions of the classes")
    inner_steps: int | None = option(None, "inner steps k while meta-training (default: the "
                                           "algorithm's own)", kind=int)
    inner_lr: float | None = option(None, "inner step size α (default: the algorithm's own)",
                                    kind=float)
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
    strategy: str = option(
        "auto", "over tasks: vmap, loop, or auto (measure each one's memory on a few tasks, "
        "time on one batch those that fit under max_memory, vmap in chunks where a whole batch "
        "would not fit, and keep the faster)")
    chunk_size: int | None = option(None, "vmap at most this many tasks at once (default: all "
                                          "of a batch; with auto, the most that fit)", kind=int)
    max_memory: float | None = option(
        None, "auto: the memory in GiB a strategy may take, the process's whole peak (default: "
        "on the CPU half of this machine's memory, or of its container's limit, shared among "
        "the processes of a torchrun job; on CUDA 0.9 of the GPU's)", kind=float)
    skip_nonfinite: bool = option(False, "skip a batch with a non-finite meta-gradient instead of stopping")
    log_every: int = option(100, "write a log line every this many iterations")
    checkpoint_every: int = option(1000, "write a checkpoint every this many iterations")
    eval_tasks: int = option(600, "held-out tasks for the final evaluation")
    eval_k_shot: int | None = option(None, "support examples per held-out task (default: as "
                                           "k_shot)", kind=int)
    eval_query_shots: int | None = option(None, "query examples per held-out task (default: as "
                                                "query_shots)", kind=int)
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
        from metazoo.core.batch import STRATEGIES

        def positive(name: str) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

        check_field_types(self)
        get_algorithm(self.algorithm)
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of: {', '.join(sorted(TASKS))}")
        for name in ("n_way", "k_shot", "query_shots", "meta_batch", "iterations", "log_every",
                     "checkpoint_every", "eval_tasks", "val_tasks"):
            positive(name)
        for name, unset in (("eval_k_shot", "as k_shot"), ("eval_query_shots", "as query_shots"),
                            ("chunk_size", "a whole batch at once")):
            if getattr(self, name) is not None and not (
                    isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be a positive integer (leave it out for "
                                 f"{unset}), got {getattr(self, name)!r}")
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
        if self.max_memory is not None:
            if not (math.isfinite(self.max_memory) and self.max_memory > 0):
                raise ValueError(f"max_memory must be a positive number of GiB (leave it out "
                                 f"for the default), got {self.max_memory!r}")
            if self.strategy != "auto":
                raise ValueError(f"max_memory bounds the choice of strategy auto, but strategy "
                                 f"is {self.strategy}; drop max_memory, or use strategy auto")
        if not (math.isfinite(self.time_budget) and self.time_budget >= 0):
            raise ValueError(f"time_budget must be >= 0 seconds, got {self.time_budget!r}")
        if self.budget_clock not in ("wall", "cpu"):
            raise ValueError(f"budget_clock must be wall or cpu, got {self.budget_clock!r}")
        if not isinstance(self.val_every, int) or self.val_every < 0:
            raise ValueError(f"val_every must be an integer >= 0 (0: never), got {self.val_every!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if not self.eval_steps or any(not isinstance(s, int) or s < 0 for s in self.eval_steps):
            raise ValueError(f"eval_steps must be integers >= 0, got {_short(self.eval_steps)}")
        if set(INNER) & set(self.algorithm_options):
            raise ValueError("algorithm_options must not hold inner_steps or inner_lr: they are "
                             "options of the run itself")
        self.settings()  # the algorithm's own checks, naming its options
        self._check_bounds()

    @property
    def is_resolved(self) -> bool:
        """Whether no option is left to a default (:meth:`resolve` has been applied)."""
        return None not in (self.model, self.inner_steps, self.inner_lr, self.eval_k_shot,
                            self.eval_query_shots)

    def resolve(self) -> TrainConfig:
        """This config with every option left to a default filled in: the task's model and
        split, the algorithm's inner steps and step size and all its own options (former names
        under today's), the held-out shots as in training. What a run builds from, stores in
        ``config.json`` and compares on resume; resolving a resolved config changes nothing."""
        settings = self.settings()
        split = inspect.signature(TASKS[self.task]).parameters.get("split")
        return dataclasses.replace(
            self,
            model=self.model or DEFAULT_MODEL.get(self.task, "mlp"),
            split=self.split if self.split is not None or split is None
            or not isinstance(split.default, str) else split.default,
            inner_steps=settings.inner_steps, inner_lr=settings.inner_lr,
            algorithm_options={name: value for name, value in dataclasses.asdict(settings).items()
                               if name not in INNER},
            eval_k_shot=self.k_shot if self.eval_k_shot is None else self.eval_k_shot,
            eval_query_shots=self.query_shots if self.eval_query_shots is None
            else self.eval_query_shots,
        )

    def _check_bounds(self) -> None:
        """Refuse values that pass the type checks but cannot run: seeds a generator cannot
        take, step counts that would not finish, step sizes the dtype cannot hold, and task
        options the task does not have (they would be silently ignored)."""
        import torch

        for name in ("seed", "eval_seed"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_SEED:
                raise ValueError(f"{name} must be an integer from 0 to 2**62, got {_short(value)}")
        if self.inner_steps is not None and self.inner_steps > MAX_STEPS:
            raise ValueError(f"inner_steps must be at most {MAX_STEPS:,}, got "
                             f"{_short(self.inner_steps)}")
        if any(isinstance(s, bool) or s > MAX_STEPS for s in self.eval_steps):
            raise ValueError(f"eval_steps must be integers from 0 to {MAX_STEPS:,}, got "
                             f"{_short(self.eval_steps)}")
        largest = torch.finfo(self.torch_dtype).max
        for name in ("inner_lr", "outer_lr"):
            if getattr(self, name) is not None and getattr(self, name) > largest:
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
    def torch_dtype(self) -> torch.dtype:
        import torch

        return getattr(torch, self.dtype)

    def settings(self) -> Settings:
        """The algorithm's settings (inner loop plus its own options).

        ``inner_steps`` and ``inner_lr`` left at ``None`` take the algorithm's own defaults. An
        option the algorithm does not take is refused, naming the algorithm's options.
        """
        inner = {name: getattr(self, name) for name in INNER if getattr(self, name) is not None}
        return get_algorithm(self.algorithm).make_settings(**inner, **self.algorithm_options)

    def method(self) -> Method:
        """The algorithm bound to its settings (:meth:`settings`)."""
        return get_algorithm(self.algorithm).bind(self.settings())

    def task_options(self, evaluation: bool = False, part: str = "") -> dict[str, Any]:
        """Options for the task factory: only those its signature takes.

        Training tasks come from the split's train part, held-out ones (``evaluation``) from
        its test part, or from ``part`` when given (the validation curve uses ``"val"``).
        Read from the resolved config (:meth:`resolve`).
        """
        if not self.is_resolved:
            return self.resolve().task_options(evaluation, part)
        options = {
            "n_way": self.n_way,
            "k_shot": self.eval_k_shot if evaluation else self.k_shot,
            "query_shots": self.eval_query_shots if evaluation else self.query_shots,
            # Task families call their data folder data_dir (air-quality: root).
            "data_dir": self.data_dir or None,
            "root": self.data_dir or None,
            "part": part or ("test" if evaluation else "train"),
            "split_seed": self.split_seed,
            "split_fractions": tuple(self.split_fractions),
            "stations": tuple(self.stations),
            # None leaves the task's own default.
            **{name: getattr(self, name) for name in ("image_size", "channels")
               if getattr(self, name) is not None},
        }
        if self.split is not None:
            options["split"] = self.split
        accepted = inspect.signature(TASKS[self.task]).parameters
        return {name: value for name, value in options.items() if name in accepted}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A stored config (``config.json``, a checkpoint's, a ``--config`` file's), resolved."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config option(s): {', '.join(sorted(unknown))}")
        # Stored before options left to a default became None: "" and 0 meant the same.
        data = {name: None if name in FORMER_UNSET and value == FORMER_UNSET[name] else value
                for name, value in data.items()}
        # A stored config holds every option its run used; one added since gets the value
        # runs used before it existed, so that a run reads back as it was trained.
        data = stored(cls, data)
        if data.get("algorithm") in ALGORITHMS and "algorithm_options" in data:
            data = {**data, "algorithm_options": get_algorithm(data["algorithm"]).stored_options(
                dict(data["algorithm_options"]))}
        return cls(**data).resolve()

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
