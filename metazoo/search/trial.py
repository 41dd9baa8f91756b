"""One trial of a search: an ordinary metazoo run, scored on validation tasks.

A trial's configuration is the study's base configuration with the sampled values put in,
trained for the trial budget in ``<study>/trials/<number>/`` with a validation curve
(``val_every``) whose every point is reported to the Optuna trial, so that the pruner can
stop a hopeless one. The held-out tasks of a trial all come from the split's validation part
(``train(held_out="val")``), drawn with a seed of their own (:func:`search_eval_seed`), so the
test tasks are never read while searching, even for task families without a validation part.

A trial retried after its process died (:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`)
takes over the dead trial's folder and resumes its run from the checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback

from metazoo.engine.config import TrainConfig
from metazoo.engine.layout import CHECKPOINT, LOCK, VALIDATION, read_log
from metazoo.engine.run import read_run
from metazoo.engine.scoring import metric_of, scored_steps
from metazoo.engine.train import NonFiniteError, train
from metazoo.fileio import exclusive_lock
from metazoo.search.space import Space, complete, sample

#: Trial folders: ``<study folder>/trials/<number>``.
TRIALS = "trials"


@dataclass(frozen=True)
class Budget:
    """What every trial gets: ``seconds`` of the clock ``clock`` ("cpu" or "wall"), and a
    validation point every ``val_every`` meta-iterations."""

    seconds: float
    clock: str
    val_every: int


def search_eval_seed(config: TrainConfig) -> int:
    """The seed of a search's validation tasks: not the test tasks' ``eval_seed``, so that
    on a task family without a validation part (sinusoid) they are other tasks."""
    return config.eval_seed + 1


def run_values(config: TrainConfig) -> dict[str, Any]:
    """Every option of ``config`` by its name, the method's own beside the run's."""
    return {**config.to_dict(), **config.algorithm_options}


def with_values(base: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    """``base`` with the sampled ``values`` put in: run options as themselves, the method's
    own under ``algorithm_options``."""
    run_fields = {spec.name for spec in dataclasses.fields(TrainConfig)}
    top = {name: value for name, value in values.items() if name in run_fields}
    own = {name: value for name, value in values.items() if name not in run_fields}
    return dataclasses.replace(base, **top,
                               algorithm_options={**base.algorithm_options, **own})


def trial_config(base: TrainConfig, values: dict[str, Any], budget: Budget) -> TrainConfig:
    """The configuration a trial trains: the values in, the trial budget, the validation
    curve, a checkpoint at each of its points, and held-out tasks scored only at the method's
    own test steps."""
    config = with_values(base, values)
    return dataclasses.replace(
        config, time_budget=budget.seconds, budget_clock=budget.clock,
        val_every=budget.val_every, checkpoint_every=budget.val_every,
        eval_steps=[scored_steps(config)], eval_seed=search_eval_seed(base))


class Surplus(Exception):
    """The trial was created after the study already had its count of trials (another
    process started one at the same moment): it runs nothing and is not counted."""


class Objective:
    """The function Optuna calls for each trial (see the module docstring)."""

    def __init__(self, base: TrainConfig, space: Space, budget: Budget, out: Path,
                 trials: int = 0) -> None:
        self.base, self.space, self.budget, self.out = base, space, budget, out
        self.trials = trials
        self.current: int | None = None  # the trial in flight

    def __call__(self, trial: optuna.Trial) -> float:
        self.current = trial.number
        frozen = {t.number: t for t in trial.study.get_trials(deepcopy=False)}
        history = RetryHeartbeatStaleTrialCallback.retry_history(frozen[trial.number])
        if self.trials and not history:
            before = sum(t.state != optuna.trial.TrialState.FAIL
                         for number, t in frozen.items() if number < trial.number)
            if before >= self.trials:
                trial.set_user_attr("surplus", True)
                raise Surplus(f"the study already has its {self.trials} trials")
        values = complete(self.space, sample(trial, self.space), run_values(self.base))
        config = trial_config(self.base, values, self.budget)
        run = self.out / TRIALS / str(trial.number)
        steps = scored_steps(config)
        resumed = self._take_over(trial, run, history)
        trial.set_user_attr("run", str(Path(TRIALS) / str(trial.number)))
        last: dict[str, float] = {}
        # What the trial costs this process in all (building, validation, checkpoints), beside
        # the budget seconds of meta-training that it is given.
        started = time.process_time()

        def report(record: dict[str, Any]) -> None:
            metric, value = metric_of(record, steps)
            trial.set_user_attr("cpu_seconds", float(record["train_seconds"]))
            trial.set_user_attr("process_cpu_seconds", time.process_time() - started)
            trial.set_user_attr("iterations", int(record["iteration"]))
            if not math.isfinite(value):
                trial.set_user_attr("diverged", True)
                raise optuna.TrialPruned(f"non-finite validation {metric} at iteration "
                                         f"{record['iteration']}")
            last["value"] = value
            trial.report(value, int(record["iteration"]))
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation {metric} {value:.4g} at iteration "
                                         f"{record['iteration']}")

        if resumed:  # the curve so far, as the dead trial reported it
            for record in read_log(run / VALIDATION):
                if record["iteration"] <= resumed:
                    report(record)
        try:
            train(config, run, resume=resumed > 0 or (run / CHECKPOINT).is_file(),
                  progress=False, evaluate_at_end=False, held_out="val", on_validation=report)
        except NonFiniteError as error:
            # A diverged trial spent its budget: it is counted, as the worst of its kind, with
            # the seconds of its last checkpoint.
            trial.set_user_attr("diverged", True)
            trial.set_user_attr("cpu_seconds", read_run(run).train_seconds)
            trial.set_user_attr("process_cpu_seconds", time.process_time() - started)
            raise optuna.TrialPruned(str(error)) from None
        if "value" not in last:  # already finished before this process: read its curve
            records = read_log(run / VALIDATION)
            if not records:
                raise optuna.TrialPruned("no validation point")
            report(records[-1])
        return last["value"]

    def _take_over(self, trial: optuna.Trial, run: Path, history: list[int]) -> int:
        """Move the folder of the trial this one retries (if this machine has it) to
        ``run``; returns the iteration of its checkpoint (0: nothing to resume)."""
        if not history:
            return 0
        previous = self.out / TRIALS / str(history[-1])
        if not (previous / CHECKPOINT).is_file() or run.exists():
            return 0
        # Its lock proves the process that ran it gone; the folder keeps the lock's inode.
        with exclusive_lock(previous / LOCK, f"trial folder {previous}"):
            os.replace(previous, run)
        iteration = read_run(run).iteration
        trial.set_user_attr("resumed_from", {"trial": history[-1], "iteration": iteration})
        return iteration


__all__ = ["TRIALS", "Budget", "Objective", "Surplus", "metric_of", "run_values", "scored_steps",
           "search_eval_seed", "trial_config", "with_values"]
