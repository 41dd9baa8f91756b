"""Running a study's trials: one process, ``--jobs`` worker processes of one machine, or any
number of machines on one storage, each running the same loop.

Before each trial the loop fails the trials whose heartbeat went stale (queueing their
retries), then starts one if the study still lacks trials (or budget) or a retry waits; when
it has its count, it waits for the trials other processes still run, so that the best config
written at the end is the whole study's.
"""

from __future__ import annotations

import os
import time
import warnings

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from metazoo.engine.stopping import Interrupted
from metazoo.search.study import COUNTED, Search, open_storage, pruner, spent_seconds, trials_of
from metazoo.search.trial import Objective, Surplus


def run_search(study: optuna.Study, objective: Objective, search: Search, jobs: int = 1) -> None:
    """Run trials until the study has ``trials`` counted ones (or its total budget is
    spent), then wait for those other processes still run; a retry of a dead trial is run
    whenever one waits. With ``jobs > 1``, that many worker processes do it side by side.

    Raises:
        Interrupted: SIGINT or SIGTERM stopped the trials in flight after their checkpoints;
            each is failed and queued again, so the same command resumes it.
    """
    if jobs == 1:
        _search(study, objective, search)
        return
    _in_workers(study, objective, search, jobs)


def _search(study: optuna.Study, objective: Objective, search: Search) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        while True:
            optuna.storages.fail_stale_trials(study)
            waiting = trials_of(study, TrialState.WAITING)
            running = trials_of(study, TrialState.RUNNING)
            counted = len(trials_of(study, *COUNTED)) + len(running) + len(waiting)
            more = (not search.trials or counted < search.trials) and (
                not search.total_seconds or spent_seconds(study) < search.total_seconds)
            if not (waiting or more):
                if not running:
                    return
                time.sleep(search.heartbeat)  # another process's trials: wait for them
                continue
            study.sampler = _sampler(search, study, bool(running))
            try:
                study.optimize(objective, n_trials=1, catch=(Surplus,),
                               callbacks=[_Progress(search)])
            except Interrupted as stop:
                _queue_again(study, objective.current)
                raise Interrupted(stop.signum, None, search.out) from None
            except KeyboardInterrupt:
                _queue_again(study, objective.current)
                raise


def _worker(objective: Objective, search: Search, name: str, threads: int) -> None:
    """One worker process of ``--jobs``: the same loop on its own connection."""
    import torch

    torch.set_num_threads(threads)
    study = optuna.load_study(study_name=name, storage=open_storage(search),
                              pruner=pruner(search))
    _search(study, objective, search)


def _in_workers(study: optuna.Study, objective: Objective, search: Search, jobs: int) -> None:
    """``jobs`` worker processes, each running trials; on SIGINT or SIGTERM each stops its
    trial after a checkpoint (SIGTERM is passed on), and the search stops with the signal."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from metazoo.engine.stopping import deferred_signals

    threads = max(1, (os.cpu_count() or 1) // jobs)
    # spawn, not fork: forking a process whose OpenMP pool has already run can hang.
    context = multiprocessing.get_context("spawn")
    with deferred_signals() as signalled, ProcessPoolExecutor(jobs, mp_context=context) as pool:
        pending = {pool.submit(_worker, objective, search, study.study_name, threads)
                   for _ in range(jobs)}
        passed_on = False
        while pending:
            ready, pending = wait(pending, timeout=0.2)
            for future in ready:
                try:
                    future.result()
                except (Interrupted, BrokenProcessPool):
                    if not signalled():
                        raise
            if signalled() and not passed_on:
                passed_on = True
                if signalled() != 2:  # Ctrl-C already reached every process of the terminal
                    for child in multiprocessing.active_children():
                        os.kill(child.pid, signalled())
    if signalled():
        raise Interrupted(signalled(), None, search.out)


def _sampler(search: Search, study: optuna.Study, shared: bool) -> optuna.samplers.TPESampler:
    """TPE seeded by the search seed and the trial count, so a study run by one process is
    the same every time; while other processes run trials, the process id joins the seed, so
    that two processes do not draw the same random startup points."""
    seed = (search.search_seed * 1_000_003 + len(study.get_trials(deepcopy=False))
            + (os.getpid() * 7919 if shared else 0)) % 2**32
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=search.startup_trials)


def _queue_again(study: optuna.Study, number: int | None) -> None:
    """Queue the stopped trial ``number`` again with its values (it resumes from its
    checkpoint), as the heartbeat does for a trial whose process died."""
    for trial in trials_of(study):
        if trial.number == number and trial.state == TrialState.FAIL:
            RetryHeartbeatStaleTrialCallback()(study, trial)


class _Progress:
    """One line per finished trial: its outcome, trials done, best so far, seconds spent."""

    def __init__(self, search: Search) -> None:
        self.search = search

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if not self.search.progress or trial.user_attrs.get("surplus"):
            return
        done = len(trials_of(study, *COUNTED))
        of = f"/{self.search.trials}" if self.search.trials else ""
        spent = spent_seconds(study)
        budget = f" of {self.search.total_seconds:g}" if self.search.total_seconds else ""
        if trial.state == TrialState.COMPLETE:
            outcome = f"{trial.value:.4g}"
        elif trial.state == TrialState.PRUNED:
            outcome = ("diverged" if trial.user_attrs.get("diverged") else
                       f"pruned at iteration {trial.user_attrs.get('iterations', 0)}")
        else:
            outcome = trial.state.name.lower()
        try:
            best = f"best {study.best_value:.4g} (trial {study.best_trial.number})"
        except ValueError:
            best = "no trial complete yet"
        print(f"trial {trial.number}: {outcome} | {done}{of} trials done, {best}, "
              f"{spent:.1f}{budget} {self.search.budget.clock} s spent", flush=True)


__all__ = ["run_search"]
