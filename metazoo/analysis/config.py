"""The options of ``metazoo compare`` and the grid of runs they make: every algorithm × training
k × seed, each an ordinary :class:`~metazoo.engine.config.TrainConfig`."""

from __future__ import annotations

from dataclasses import dataclass

from metazoo.algorithms import ALGORITHMS
from metazoo.analysis.grid import OWN, run_name
from metazoo.engine.config import TrainConfig
from metazoo.options import check_field_types, option

#: The iteration bound of a run under a time budget: one no run reaches before its budget.
UNBOUNDED = 10**9


@dataclass(frozen=True)
class CompareConfig:
    """Options of ``metazoo compare`` (defaults: sinusoid, about 10 minutes on 2 cores)."""

    task: str = option("sinusoid", "task family")
    algorithms: list = option([], "algorithms to compare (empty: every registered one)")
    train_steps: list = option(
        [OWN, 1, 5], "inner steps k while meta-training, one run each (-1: each algorithm's own "
        "k, so that every method also runs under its own protocol)")
    seeds: list = option([0, 1, 2], "seeds (one run each)")
    iterations: int = option(0, "meta-iterations of every run (equal iterations); 0: 1,000, "
                             "or with --time-budget as many as the budget allows")
    time_budget: float = option(0.0, "seconds of meta-training per run instead (equal compute; "
                                "--iterations then caps only if given)")
    budget_clock: str = option("cpu", "what --time-budget counts: cpu (the run's CPU seconds; "
                                      "fair with --jobs > 1) or wall")
    jobs: int = option(0, "runs trained side by side, each with cores/jobs threads "
                          "(0: as many as there are cores, at most 2)")
    meta_batch: int = option(25, "tasks per meta-iteration")
    inner_lr: float = option(0.0, "inner step size α, training and test (0: each algorithm's "
                                  "own default)")
    outer_lr: float = option(1e-3, "Adam step size")
    k_shot: int = option(10, "support examples per task (per class)")
    query_shots: int = option(10, "query examples per task (per class)")
    n_way: int = option(5, "classes per task (classification)")
    data_dir: str = option("", "data folder (Omniglot)")
    test_steps: list = option([0, 1, 2, 5, 10], "test-time steps to report after")
    eval_tasks: int = option(300, "held-out tasks per run")
    eval_query_shots: int = option(0, "query examples per held-out task (0: as query_shots)")
    analysis_tasks: int = option(100, "held-out tasks for path and fidelity measurements")
    fidelity_steps: list = option([1, 2, 5, 10], "k of the fidelity comparison")
    cost_steps: list = option([1, 5, 10, 20], "k of the cost measurements")
    toy_iterations: int = option(300, "meta-iterations of the 2-D picture (0: no picture)")
    device: str = option("cpu", "torch device")
    algorithm_options: dict = option({}, "each algorithm's own settings, keyed by algorithm, "
                                         "e.g. '{\"imaml\": {\"cg_damping\": 1.0}}'")
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

    def train_config(self, algorithm: str, steps: int, seed: int) -> TrainConfig:
        own = self.algorithm_options.get(algorithm, {})
        if not isinstance(own, dict):
            raise ValueError(  # noqa: TRY004 - a bad option value, reported as such
                f"algorithm_options of {algorithm} must be an object of its settings, got "
                f"{str(own)[:80]}")
        return TrainConfig(
            algorithm=algorithm, task=self.task, inner_steps=steps, inner_lr=self.inner_lr,
            outer_lr=self.outer_lr, meta_batch=self.meta_batch, iterations=self.run_iterations(),
            time_budget=self.time_budget, budget_clock=self.budget_clock, seed=seed,
            k_shot=self.k_shot, algorithm_options=dict(own),
            query_shots=self.query_shots, n_way=self.n_way, data_dir=self.data_dir,
            eval_tasks=self.eval_tasks, eval_steps=list(self.test_steps),
            eval_query_shots=self.eval_query_shots, device=self.device,
            log_every=1, checkpoint_every=500, tensorboard=self.tensorboard,
            # One diverging method must not stop the sweep: its non-finite batches are dropped
            # and counted (skipped_batches in runs.jsonl), which is itself a finding.
            skip_nonfinite=True,
        )


def grid_cells(config: CompareConfig) -> dict[str, TrainConfig]:
    """Every run of the comparison, by name: algorithm × k × seed."""
    return {run_name(a, k, s): config.train_config(a, k, s) for a in config.algorithms
            for k in config.train_steps for s in config.seeds}
