"""A grid of named training runs, trained resumably, side by side in worker processes, one
record each; and the names of the algorithm × k × seed grid that ``metazoo compare`` runs.

``metazoo compare`` and the benchmark scripts use this runner. A run is named, has a full
:class:`~metazoo.engine.config.TrainConfig`, trains (or resumes) in ``runs/<name>`` and is
then scored by the caller's ``score`` (e.g. per held-out task, :class:`PerTask`). Its record,
appended to ``runs.jsonl`` as it ends, carries the configuration it was trained with: a later
sweep into the same folder reuses a run only if its configuration is the same, and refuses to
mix in runs made with other options. The caller owns the folder (its checks and lock).
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, CancelledError, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from tqdm import tqdm

# The grid's names are defined beside its options (which must not load torch); used here too.
from metazoo.analysis.config import OWN, k_label, run_name  # noqa: F401
from metazoo.engine import NonFiniteError, evaluate_params, rebuild_run, train
from metazoo.engine.config import TrainConfig
from metazoo.engine.layout import CHECKPOINT, LOG, RESULTS, read_log, read_records
from metazoo.engine.run import NOT_RESULTS, report_to_dict
from metazoo.engine.setup import configure_process
from metazoo.engine.stopping import Interrupted, deferred_signals
from metazoo.fileio import append_line, atomic_write_bytes, atomic_write_data
from metazoo.messages import brief

RECORDS = "runs.jsonl"
TABLE = "runs.csv"
RUNS = "runs"
PER_TASK = "per_task.pt"
#: What a record takes from the run's results.json where it has one.
TIMINGS = ("iterations", "train_seconds", "median_seconds_per_iteration")

#: What scores a trained run, in the process that trained it: (config, run folder) → the
#: record's fields. It must be picklable (a module-level function or a dataclass instance),
#: for worker processes.
Score = Callable[[TrainConfig, Path], dict]


def runs_of(records: list[dict], algorithm: str, steps: int) -> list[dict]:
    """The records of ``algorithm`` trained with ``steps`` (as asked: OWN matches the runs made
    with each algorithm's own k, whatever that resolved to)."""
    prefix = f"{algorithm}-k{k_label(steps)}-seed"
    return [r for r in records if r["name"].startswith(prefix)
            and r["name"][len(prefix):].isdigit()]


@dataclass(frozen=True)
class PerTask:
    """Score a run on its held-out tasks, task by task (kept in ``per_task.pt``); the record
    holds each metric's mean as ``"<metric>@<steps>"``."""

    def __call__(self, config: TrainConfig, run_dir: Path) -> dict:
        setup, params, state, _ = rebuild_run(run_dir)
        values = evaluate_params(setup, params, state, per_task=True)
        atomic_write_bytes(run_dir / PER_TASK, lambda file: torch.save(values, file))
        return {f"{metric}@{step}": v.double().mean().item()
                for step, metrics in values.items() for metric, v in metrics.items()}


@dataclass(frozen=True)
class Evaluations:
    """Score a run as ``metazoo eval`` would: ``evaluation``, the run's own held-out report
    (its ``results.json``, or its θ evaluated now where there is none, as after a divergence),
    and under ``extra`` one report per named set of changed evaluation options, e.g.
    ``{"k10": {"eval_k_shot": 10}}``. Reports are ``{steps: {metric: {mean, ci95}}}``."""

    extra: dict = field(default_factory=dict)

    def __call__(self, config: TrainConfig, run_dir: Path) -> dict:
        if (run_dir / RESULTS).is_file():
            evaluation = json.loads((run_dir / RESULTS).read_text())["evaluation"]
        else:
            evaluation = evaluation_report(run_dir)
        return {"evaluation": evaluation, "extra": {
            label: evaluation_report(run_dir, **options) for label, options in self.extra.items()}}


def evaluation_report(run_dir: Path, **options) -> dict:
    """The held-out report of the run in ``run_dir`` (its last checkpoint), as ``metazoo
    eval`` writes it, with evaluation ``options`` changed (``eval_tasks``, ``eval_k_shot``…)."""
    setup, params, state, _ = rebuild_run(run_dir, **options)
    configure_process(setup.config)
    return report_to_dict(evaluate_params(setup, params, state))


def train_run(name: str, config: TrainConfig, run_dir: Path, threads: int = 0,
              score: Score | None = None, evaluate_at_end: bool = False,
              keep_diverged: bool = False) -> dict:
    """Train (or resume) and score one run; its record for ``runs.jsonl``, which carries the
    run's whole configuration, so that a later sweep never reuses it for others.

    With ``keep_diverged`` a run stopped by a non-finite meta-gradient is kept at its last
    good checkpoint and scored there; its record names the divergence (``diverged``).
    """
    if threads:
        torch.set_num_threads(threads)
    config = config.resolve()  # the record holds what the run used (its k, its options)
    resume = (run_dir / CHECKPOINT).is_file()
    diverged = None
    try:
        summary = train(config, run_dir, resume=resume, overwrite=not resume, progress=False,
                        evaluate_at_end=evaluate_at_end)
    except NonFiniteError as error:
        if not keep_diverged:
            raise
        _, _, _, checkpoint = rebuild_run(run_dir)
        diverged = str(error).partition(";")[0]
        summary = {"iterations": checkpoint.iteration, "train_seconds": checkpoint.train_seconds,
                   "median_seconds_per_iteration": float("nan")}
    if evaluate_at_end and (run_dir / RESULTS).is_file():
        # The run's own account of its training: a finished run resumed has only its log's
        # sampled iterations to time.
        stored = json.loads((run_dir / RESULTS).read_text())
        summary = {**summary, **{key: stored[key] for key in TIMINGS if key in stored}}
    scores = score(config, run_dir) if score is not None else {}
    skipped = sum(bool(record.get("skipped")) for record in read_log(run_dir / LOG))
    return {"name": name, "algorithm": config.algorithm, "k": config.inner_steps,
            "seed": config.seed, "iterations": summary["iterations"],
            "train_seconds": summary["train_seconds"],
            "ms_per_iteration": 1e3 * summary["median_seconds_per_iteration"],
            "skipped_batches": skipped, "config": config.to_dict(),
            **({} if diverged is None else {"diverged": diverged}), **scores}


def _is_record(record: dict) -> bool:
    return (isinstance(record.get("name"), str) and isinstance(record.get("config"), dict)
            and {"algorithm", "k", "seed"} <= set(record))


def stored_records(cells: dict[str, TrainConfig], out: Path) -> dict[str, dict]:
    """The finished runs recorded in ``out``, each checked against its cell's configuration:
    a run made with other options is refused, never reused."""
    records = {record["name"]: record for record in read_records(
        out / RECORDS, _is_record, "a run record")}
    for name, wanted in cells.items():
        if name not in records:
            continue
        try:
            stored = TrainConfig.from_dict(records[name]["config"])
        except (ValueError, TypeError) as error:
            raise ValueError(f"{out / RECORDS}: the record of {name} holds an invalid config "
                             f"({brief([str(error)], width=100)})") from None
        wanted = wanted.resolve()
        differing = stored.differences(wanted, ignore=NOT_RESULTS)
        if differing:
            first = differing[0]
            raise ValueError(
                f"{out} holds run {name} made with other options ({brief(differing)}; e.g. "
                f"{first} {getattr(stored, first)!r} there, {getattr(wanted, first)!r} now); "
                "give the same options, or choose another out folder")
    return records


def run_grid(cells: dict[str, TrainConfig], out: Path, *, runs: Path | None = None,
             score: Score | None = None, jobs: int = 0, threads: int = 0,
             evaluate_at_end: bool = False, keep_diverged: bool = False, progress: bool = True,
             desc: str = "runs") -> list[dict]:
    """Train and score every named run not finished yet; return all records in order.

    Args:
        cells: every run of the grid, by name.
        out: the folder of ``runs.jsonl`` (the records) and ``runs.csv``.
        runs: the folder of the run folders (default ``out/runs``).
        score: what each record holds beyond the training summary (default: nothing).
        jobs: runs trained side by side in worker processes (0: as many as there are cores,
            at most 2); 1 trains them in this process.
        threads: torch threads per run (0: cores/jobs in workers; this process's own with
            one job).
        evaluate_at_end: each run writes ``results.json`` as ``metazoo train`` does.
        keep_diverged: see :func:`train_run`.

    A record is appended to ``runs.jsonl`` (and ``runs.csv`` rewritten) as each run ends, in
    whatever order they finish, so an interrupted sweep loses at most the runs in flight (and
    those resume from their own checkpoints).
    """
    runs = out / RUNS if runs is None else runs
    done = stored_records(cells, out)
    todo = [name for name in cells if name not in done]
    bar = tqdm(total=len(todo), disable=not progress, desc=desc, unit="run")
    one_run = partial(train_run, score=score, evaluate_at_end=evaluate_at_end,
                      keep_diverged=keep_diverged)

    def finished(record: dict) -> None:
        with open(out / RECORDS, "a") as file:
            append_line(file, json.dumps(record))
        done[record["name"]] = record
        write_table(out / TABLE, list(done.values()))
        bar.set_postfix_str(record["name"])
        bar.update()

    jobs = min(jobs or min(2, os.cpu_count() or 1), len(todo)) or 1
    try:
        if jobs == 1:
            for name in todo:
                finished(one_run(name, cells[name], runs / name, threads))
        else:
            threads = threads or max(1, (os.cpu_count() or 1) // jobs)
            _in_workers({name: partial(one_run, name, cells[name], runs / name, threads)
                         for name in todo}, out, jobs, finished)
    finally:
        bar.close()
    return [done[name] for name in cells]


def _in_workers(tasks: dict[str, Callable[[], dict]], out: Path, jobs: int,
                finished: Callable[[dict], None]) -> None:
    """Run ``tasks`` (one run each) in ``jobs`` worker processes.

    On SIGINT or SIGTERM no new run starts; the runs in flight finish their iteration and
    save a checkpoint (Ctrl-C reaches the workers itself; SIGTERM is passed on to them), and
    the sweep stops with the signal's status.
    """
    # spawn, not fork: forking a process whose OpenMP pool has already run can hang.
    context = multiprocessing.get_context("spawn")
    with deferred_signals() as signalled, ProcessPoolExecutor(jobs, mp_context=context) as pool:
        pending = {pool.submit(task) for task in tasks.values()}
        passed_on = False
        while pending:
            ready, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in ready:
                try:
                    finished(future.result())
                except (Interrupted, CancelledError, BrokenProcessPool):
                    if not signalled():
                        raise
            if signalled() and not passed_on:
                passed_on = True
                for future in pending:
                    future.cancel()
                if signalled() != 2:  # Ctrl-C already reached every process of the terminal
                    for child in multiprocessing.active_children():
                        os.kill(child.pid, signalled())
    if signalled():
        raise Interrupted(signalled(), None, out)


def write_table(path: Path, records: list[dict]) -> None:
    """The records as CSV, atomically; values that are not scalars (the configuration, whole
    reports) are left out: they are in runs.jsonl."""
    nested = {key for record in records for key, value in record.items()
              if isinstance(value, (dict, list))}
    keys = sorted({key for record in records for key in record if key not in nested},
                  key=lambda k: (k not in ("name", "algorithm", "k", "seed"), k))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    atomic_write_data(path, text.getvalue().encode())
