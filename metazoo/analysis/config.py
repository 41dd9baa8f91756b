"""The options of ``metazoo compare`` and the grid of runs they make: every algorithm × training
k × seed, each an ordinary :class:`~metazoo.engine.config.TrainConfig`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from metazoo.algorithms import ALGORITHMS
from metazoo.engine.config import TrainConfig
from metazoo.engine.layout import STUDY_BEST
from metazoo.options import check_field_types, option
from metazoo.space import RUN_OPTIONS

#: Options of a tuned study's best config that ``compare --tuned`` must share with the
#: comparison: the problem it was tuned for.
TUNED_PROBLEM = ("task", "n_way", "k_shot", "query_shots")

#: The iteration bound of a run under a time budget: one no run reaches before its budget.
UNBOUNDED = 10**9
#: ``train_steps`` value meaning each algorithm's own k (its defaults, or its settings).
OWN = -1


def run_name(algorithm: str, steps: int, seed: int) -> str:
    """The folder name of one run of the comparison's grid."""
    return f"{algorithm}-k{k_label(steps)}-seed{seed}"


def k_label(steps: int) -> str:
    """A training k as the report writes it: ``own`` for each algorithm's own."""
    return "own" if steps == OWN else str(steps)


_SAME = object()


def shared(name: str, default: Any = _SAME) -> Any:
    """A comparison option that every run of the grid takes as it is: the
    :class:`~metazoo.engine.config.TrainConfig` field ``name``, with its help text and kind,
    and its default unless the comparison has its own ``default`` (a scalar)."""
    spec = TRAIN_FIELDS[name]
    metadata = {key: spec.metadata[key] for key in ("help", "kind") if key in spec.metadata}
    return field(default=spec.default if default is _SAME else default,
                 metadata={**metadata, "formerly": "", "shared": True})


TRAIN_FIELDS = {spec.name: spec for spec in dataclasses.fields(TrainConfig)}


@dataclass(frozen=True)
class CompareConfig:
    """Options of ``metazoo compare`` (defaults: sinusoid, about 10 minutes on 2 cores)."""

    task: str = shared("task")
    algorithms: list = field(default_factory=list, metadata={
        "help": "algorithms to compare (empty: every registered one)", "formerly": "",
        "items": str})
    train_steps: list = option(
        [OWN, 1, 5], "inner steps k while meta-training, one run each (-1: each algorithm's own "
        "k, so that every method also runs under its own protocol)")
    seeds: list = option([0, 1, 2], "seeds (one run each)")
    iterations: int = option(0, "meta-iterations of every run (equal iterations); 0: 1,000, "
                             "or with --time-budget as many as the budget allows")
    time_budget: float = option(0.0, "seconds of meta-training per run instead (equal compute; "
                                "--iterations then caps only if given)")
    budget_clock: str = shared("budget_clock")
    jobs: int = option(0, "runs trained side by side, each with cores/jobs threads "
                          "(0: as many as there are cores, at most 2)")
    meta_batch: int = shared("meta_batch")
    inner_lr: float | None = option(None, "inner step size α, training and test (default: each "
                                          "algorithm's own)", kind=float)
    outer_lr: float = shared("outer_lr")
    k_shot: int = shared("k_shot")
    query_shots: int = shared("query_shots")
    n_way: int = shared("n_way")
    data_dir: str = shared("data_dir")
    test_steps: list = option([0, 1, 2, 5, 10], "test-time steps to report after")
    eval_tasks: int = shared("eval_tasks", 300)
    eval_query_shots: int | None = shared("eval_query_shots")
    analysis_tasks: int = option(100, "held-out tasks for path and fidelity measurements")
    fidelity_steps: list = option([1, 2, 5, 10], "k of the fidelity comparison")
    cost_steps: list = option([1, 5, 10, 20], "k of the cost measurements")
    toy_iterations: int = option(300, "meta-iterations of the 2-D picture (0: no picture)")
    device: str = shared("device")
    algorithm_options: dict = option({}, "each algorithm's own settings, keyed by algorithm, "
                                         "e.g. '{\"imaml\": {\"cg_damping\": 1.0}}'")
    tuned: list = field(default_factory=list, metadata={
        "help": "study folders of 'metazoo tune', one per algorithm: that algorithm trains with "
                "its study's best settings (step sizes, meta-batch, inner steps as its own k, "
                "its own options) instead of the defaults and the options above; give "
                "--time-budget for equal compute, since a tuned meta-batch changes an "
                "iteration's cost", "formerly": "", "items": str})
    tensorboard: bool = option(False, "each run also writes TensorBoard event files to "
                                      "<out>/runs/<run>/tensorboard (needs the tensorboard "
                                      "package; view them all with tensorboard --logdir <out>)")

    def __post_init__(self) -> None:
        check_field_types(self)
        if not self.algorithms:
            object.__setattr__(self, "algorithms", list(ALGORITHMS))
        unknown = [a for a in self.algorithms if a not in ALGORITHMS]
        if unknown:
            raise ValueError(f"unknown algorithm(s) {', '.join(unknown)}; choose from: "
                             f"{', '.join(sorted(ALGORITHMS))}")
        for name in ("train_steps", "seeds", "test_steps", "fidelity_steps", "cost_steps"):
            values = getattr(self, name)
            lowest = OWN if name == "train_steps" else 0
            if not values or any(not isinstance(v, int) or v < lowest for v in values):
                own = " (-1: each algorithm's own)" if name == "train_steps" else ""
                raise ValueError(f"{name} must be a non-empty list of integers >= {lowest}"
                                 f"{own}, got {values}")
            if len(set(values)) != len(values):
                raise ValueError(f"{name} lists a value twice: {values}")
        if 0 in self.fidelity_steps:
            raise ValueError("fidelity_steps must be >= 1")
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0 (0: 1,000, or as many as --time-budget "
                             f"allows), got {self.iterations}")
        for name in ("meta_batch", "eval_tasks", "analysis_tasks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer")
        if self.jobs < 0:
            raise ValueError(f"jobs must be >= 0 (0: automatic), got {self.jobs} (--jobs)")
        # Every tuned study is read and checked here, before any run starts, and kept.
        _ = self.tuned_settings
        foreign = sorted(set(self.algorithm_options) - set(self.algorithms))
        if foreign:
            raise ValueError(f"algorithm_options must be keyed by the algorithms compared "
                             f"({', '.join(self.algorithms)}); got {', '.join(foreign)[:120]}. "
                             "Write e.g. {\"imaml\": {\"cg_damping\": 1.0}}")
        # Every run's settings are checked before any run starts.
        for algorithm in self.algorithms:
            for steps in self.train_steps:
                self.train_config(algorithm, steps, self.seeds[0])

    def run_iterations(self) -> int:
        """Each run's iteration count: the one given; else, under a time budget, a bound no
        run reaches (the budget stops it, so every method gets equal compute, not a cap that
        a fast method hits first); else 1,000."""
        if self.iterations:
            return self.iterations
        return UNBOUNDED if self.time_budget else 1000

    @cached_property
    def tuned_settings(self) -> dict[str, dict[str, Any]]:
        """The best settings of each ``tuned`` study, by algorithm (read once): its searched run options
        (:data:`~metazoo.space.RUN_OPTIONS`) and its own options.

        Raises:
            ValueError: a folder without a finished search, two studies of one algorithm, a
                study of an algorithm not compared, or one tuned for another problem.
        """
        found: dict[str, dict[str, Any]] = {}
        for folder in map(Path, self.tuned):
            best = read_tuned(folder)
            if best.algorithm in found:
                raise ValueError(f"tuned lists two studies of {best.algorithm}; give one")
            if best.algorithm not in self.algorithms:
                raise ValueError(f"tuned study {folder} is of {best.algorithm}, which algorithms "
                                 f"leaves out ({', '.join(self.algorithms)}); add it or drop "
                                 "the study")
            for name in TUNED_PROBLEM:
                if getattr(best, name) != getattr(self, name):
                    raise ValueError(
                        f"tuned study {folder} was tuned with {name} {getattr(best, name)!r}, "
                        f"this comparison has {getattr(self, name)!r}; compare on the problem "
                        f"it was tuned for (--{name.replace('_', '-')} "
                        f"{getattr(best, name)}) or tune again")
            found[best.algorithm] = {**{name: getattr(best, name) for name in RUN_OPTIONS},
                                     "algorithm_options": best.algorithm_options}
        return found

    def train_config(self, algorithm: str, steps: int, seed: int) -> TrainConfig:
        own = self.algorithm_options.get(algorithm, {})
        if not isinstance(own, dict):
            raise ValueError(  # noqa: TRY004 - a bad option value, reported as such
                f"algorithm_options of {algorithm} must be an object of its settings, got "
                f"{str(own)[:80]}")
        tuned = self.tuned_settings.get(algorithm)
        if tuned is not None:
            return self._config(algorithm, seed, algorithm_options={
                **tuned["algorithm_options"], **own}, **{
                **{name: value for name, value in tuned.items() if name != "algorithm_options"},
                **({} if steps == OWN else {"inner_steps": steps})})
        return self._config(algorithm, seed, inner_steps=None if steps == OWN else steps,
                            inner_lr=self.inner_lr,
                            outer_lr=self.outer_lr, meta_batch=self.meta_batch,
                            algorithm_options=dict(own))

    def _config(self, algorithm: str, seed: int, **method: Any) -> TrainConfig:
        """One run of the grid: the comparison's problem, budget and evaluation, and the
        method's options ``method``."""
        return TrainConfig(
            algorithm=algorithm, iterations=self.run_iterations(), time_budget=self.time_budget,
            seed=seed, eval_steps=list(self.test_steps),
            **{name: getattr(self, name) for name in SHARED if name not in method},
            log_every=1, checkpoint_every=500, tensorboard=self.tensorboard,
            # One diverging method must not stop the sweep: its non-finite batches are dropped
            # and counted (skipped_batches in runs.jsonl), which is itself a finding.
            skip_nonfinite=True, **method,
        )


#: The comparison's options that every run takes unchanged (declared by :func:`shared`),
#: unless the method's own settings (tuned, or ``--inner-lr``…) set them.
SHARED = tuple(spec.name for spec in dataclasses.fields(CompareConfig)
               if spec.metadata.get("shared"))


def read_tuned(folder: Path) -> TrainConfig:
    """The best config of a finished ``metazoo tune`` study folder (its ``best.json``).

    Raises:
        ValueError: a folder without one, or one that is not a valid config.
    """
    path = folder / STUDY_BEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"tuned study {folder} has no {STUDY_BEST}: give the folder of a "
                         "'metazoo tune' whose search has finished (its --out)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"tuned study {path}: cannot read it as JSON "
                         f"({str(error)[:100]})") from None
    if not isinstance(data, dict):
        raise ValueError(  # noqa: TRY004 - bad input, reported in one line (exit 2)
            f"tuned study {path}: expected a JSON object of run options")
    try:
        return TrainConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"tuned study {path}: not a valid run config ({str(error)[:150]})") \
            from None


def grid_cells(config: CompareConfig) -> dict[str, TrainConfig]:
    """Every run of the comparison, by name: algorithm × k × seed."""
    return {run_name(a, k, s): config.train_config(a, k, s) for a in config.algorithms
            for k in config.train_steps for s in config.seeds}
