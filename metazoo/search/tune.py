"""``metazoo tune``: search one method's space on one task family, write the best config,
and (with a final budget) retrain it beside the defaults and score both on the test split.

Order of work: every check first (the base configuration, the space and its ranges, the
numbers, the folder, the storage, the study's record), then the search under the study
folder's lock, then ``best.json``, the final runs and the report.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metazoo.algorithms import get_algorithm
from metazoo.engine.config import TrainConfig
from metazoo.engine.tensorboard import check_tensorboard
from metazoo.fileio import write_json
from metazoo.messages import brief
from metazoo.search.loop import run_search
from metazoo.search.space import (
    RUN_OPTIONS,
    Space,
    complete,
    read_space_file,
    resolve,
    space_for,
)
from metazoo.search.study import BEST, Search, best_config, opened_study
from metazoo.search.trial import Objective, run_values, search_eval_seed, with_values


@dataclass(frozen=True)
class Final:
    """The final runs: ``seconds`` of the trial clock for the best config and (unless
    ``defaults`` is False) the defaults, once per seed of ``seeds``."""

    seconds: float = 0.0
    seeds: tuple[int, ...] = (0,)
    defaults: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.seconds) and self.seconds >= 0):
            raise ValueError(f"final_budget must be a positive number of seconds, got "
                             f"{self.seconds!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"final_seeds must be distinct integers >= 0, got {list(self.seeds)}")


def searched_options(algorithm: str) -> list[str]:
    """The options a space of ``algorithm`` may hold: the shared run options and its own."""
    return [*RUN_OPTIONS, *get_algorithm(algorithm).options()]


def method_space(base: TrainConfig, space_file: Path | None = None,
                 fixed: frozenset[str] = frozenset()) -> Space:
    """The space searched for ``base``'s method: its declared one, changed by ``space_file``,
    less the options ``fixed`` on the command line, resolved under the base configuration and
    each range checked against what its option accepts."""
    base = base.resolve()
    space = space_for(base.algorithm)
    if space_file is not None:
        space = read_space_file(space_file, space, searched_options(base.algorithm))
    space = tuple(entry for entry in space if entry.name not in fixed)
    fixed_values = run_values(base)
    space = resolve(space, fixed_values)
    for entry in space:
        try:
            entry.check()
        except ValueError as error:
            raise ValueError(f"space entry {entry.name}: {error}") from None
        for value in entry.values():
            values = {entry.name: value}
            for name, allowed in entry.when.values.items():
                values.setdefault(name, allowed[0])
            try:
                with_values(base, complete(space, values, fixed_values))
            except (ValueError, TypeError) as error:
                raise ValueError(
                    f"space entry {entry.name}: {value!r} is outside what {entry.name} accepts "
                    f"({brief([str(error)], width=120)}); {base.algorithm}'s options are: "
                    f"{', '.join(searched_options(base.algorithm))}") from None
    if not space:
        raise ValueError(f"nothing to search: every option of {base.algorithm}'s space is fixed "
                         "or dropped; leave some out of the command line or the --space file")
    return space


def direction_of(base: TrainConfig) -> str:
    """Maximize validation accuracy for classification, minimize query loss otherwise.

    Raises:
        ValueError: the task's split has no validation part (a search never reads the test
            part), naming the option to change.
    """
    from metazoo.tasks import make_task

    try:
        tasks = make_task(base.task, **base.task_options(evaluation=True, part="val"))
    except ValueError as error:
        raise ValueError(f"no validation tasks to search on in {base.task} "
                         f"({brief([str(error)], width=120)}); a search never reads the test "
                         "part: choose a split with a validation part (--split)") from None
    return "maximize" if tasks.loss == "cross_entropy" else "minimize"


def tune(base: TrainConfig, search: Search, *, space_file: Path | None = None,
         fixed: frozenset[str] = frozenset(), final: Final = Final(),
         report: bool = True, jobs: int = 1, preset: str | None = None) -> dict[str, Any]:
    """Search, write ``best.json``, then the final runs and the report.

    Args:
        base: the configuration every trial starts from (the defaults, or a preset).
        search: the study's folder, storage, trials and budgets.
        space_file: a ``--space`` file narrowing or widening the method's space.
        fixed: options given on the command line: they are not searched.
        final: the final runs' budget (0: none), seeds, and whether the defaults are
            retrained beside the best settings.
        report: write ``report/index.{md,html}``.
        jobs: trials side by side in worker processes of this machine.
        preset: the preset ``base`` was made from, if any, for the report to name.

    Returns:
        A summary: the best trial's number, value and values, the path of ``best.json`` and,
        with final runs, their scores.

    Raises:
        ValueError: any input refused (nothing was written), or no trial completed.
        Interrupted: SIGINT or SIGTERM stopped the trial in flight; run the command again.
    """
    base = base.resolve()
    check_tensorboard(base.tensorboard)
    space = method_space(base, space_file, fixed)
    direction = direction_of(base)
    budget = search.budget
    objective = Objective(base, space, budget, search.out, search.trials)
    # The final runs draw the learning curve at about as many points as a trial did: at the
    # trials' --val-every, a run many times as long would spend most of its time validating.
    longer = dataclasses.replace(base, budget_clock=budget.clock, val_every=base.val_every * max(
        1, math.ceil((final.seconds or budget.seconds) / budget.seconds)))
    with opened_study(base, space, search, direction) as study:
        run_search(study, objective, search, jobs)
        best = best_config(study, longer, space, final.seconds or budget.seconds)
        write_json(search.out / BEST, best.to_dict())
        summary: dict[str, Any] = {
            "best_trial": study.best_trial.number, "best_value": study.best_value,
            "best": dict(study.best_trial.params), "best_json": search.out / BEST,
            "direction": direction, "validation_seed": search_eval_seed(base),
            "preset": preset}
        if final.seconds:
            from metazoo.search.final import final_runs

            defaults = dataclasses.replace(longer, time_budget=final.seconds) \
                if final.defaults else None
            summary["final"] = final_runs(best, defaults, final.seeds, search.out,
                                          progress=search.progress)
        if report:
            from metazoo.search.report import write_report

            summary["report"] = write_report(study, base, space, search, summary)
    return summary


__all__ = ["Final", "direction_of", "method_space", "searched_options", "tune"]
