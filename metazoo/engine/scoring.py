"""Scoring a run while and after it trains: the validation curve and the final results.

Both stop at once on SIGINT or SIGTERM (the checkpoint on disk is whole; what was not scored
is scored again on resume), and both can always be done again for a finished run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from metazoo.algorithms import State, own_test_steps
from metazoo.engine.checkpoint import Checkpoint
from metazoo.engine.config import TrainConfig
from metazoo.engine.layout import RESULTS, RESULTS_TABLE, VALIDATION, read_log
from metazoo.engine.run import evaluate_params, non_finite, write_results
from metazoo.engine.setup import Setup
from metazoo.engine.stopping import Interrupted, Requests, Stopped
from metazoo.fileio import append_line
from metazoo.types import Params


class NonFiniteError(RuntimeError):
    """The run produced no usable θ: a NaN or infinite meta-gradient or loss, every batch
    skipped, or results that are not finite."""


def final_evaluation(setup: Setup, params: Params, state: State, out: Path, iteration: int,
                      summary: dict[str, Any], signalled: Requests,
                      names: tuple[str, ...] = (RESULTS, RESULTS_TABLE),
                      progress: bool = False) -> None:
    """Score θ on the held-out tasks and write the results (those of ``names``); with
    ``progress``, a bar counts the tasks scored.

    A signal stops it at once: the final checkpoint is already on disk, and a resume
    evaluates again.

    Raises:
        Interrupted: on SIGINT or SIGTERM.
        NonFiniteError: results that are not finite (written all the same).
    """
    try:
        with signalled.at_once():
            report = evaluate_params(setup, params, state, progress=progress,
                                     desc="final evaluation")
    except Stopped as stopped:
        raise Interrupted(stopped.signum, iteration, out) from None
    summary["report"] = report
    write_results(out, setup.config, report, summary, names)
    problem = non_finite(report)
    if problem:
        raise NonFiniteError(f"the results in {out} are not finite ({problem}): θ diverged; "
                             "lower outer_lr or inner_lr")


def validate_if_missing(setup: Setup, params: Params, state: State, out: Path,
                         checkpoint: Checkpoint, signalled: Requests, finished: bool,
                         progress: bool = False) -> bool:
    """Score the validation point of the checkpoint's iteration if the curve should have one
    and has not (a stop while it was being scored leaves the checkpoint, not the point).

    Returns:
        Whether it was scored.
    """
    config, iteration = setup.config, checkpoint.iteration
    due = config.val_every and iteration and (iteration % config.val_every == 0 or finished)
    if not due or any(record["iteration"] == iteration for record in read_log(out / VALIDATION)):
        return False
    try:
        validate(setup, params, state, out / VALIDATION, iteration, checkpoint.train_seconds,
                  signalled, progress)
    except Stopped as stopped:
        raise Interrupted(stopped.signum, iteration, out) from None
    return True


def validate(setup: Setup, params: Params, state: State, path: Path, iteration: int,
              seconds: float, signalled: Requests, progress: bool = False) -> dict[str, Any]:
    """Append θ's score on the fixed validation tasks to the learning curve at ``path``;
    returns the record. With ``progress``, a bar counts the tasks scored.

    Raises:
        Stopped: a signal while scoring (nothing is written then).
    """
    with signalled.at_once():
        tasks, seed = setup.val_tasks
        report = evaluate_params(setup, params, state, num_tasks=setup.config.val_tasks,
                                 eval_tasks=tasks, seed=seed, progress=progress,
                                 desc=f"validation at iteration {iteration}")
    record = {"iteration": iteration, "train_seconds": seconds,
              **{f"{metric}@{step}": estimate.mean for step, values in report.items()
                 for metric, estimate in values.items()}}
    with open(path, "a") as file:
        append_line(file, json.dumps(record))
    return record


def scored_steps(config: TrainConfig) -> int:
    """The number of test steps a run's validation curve is scored at (a search's trials,
    ``metazoo plot``): the method's own protocol, else the largest of the run's
    ``eval_steps``."""
    return own_test_steps(config.method(), max(config.eval_steps))


def metric_of(record: dict[str, Any], steps: int) -> tuple[str, float]:
    """The score of a validation record: accuracy after ``steps`` test steps where the task
    has one (classification), else the query loss."""
    for metric in ("accuracy", "loss"):
        key = f"{metric}@{steps}"
        if key in record:
            return metric, float(record[key])
    raise KeyError(f"no score after {steps} test steps in the validation record")


__all__ = ["NonFiniteError", "final_evaluation", "metric_of", "scored_steps", "validate",
           "validate_if_missing"]
