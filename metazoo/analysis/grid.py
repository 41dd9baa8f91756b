"""Train a grid of named runs, resumably, side by side in worker processes; one record each.

``metazoo compare`` uses this runner (the benchmark scripts drive ``metazoo train`` as a
user would, each run a process of its own). A run is named, has a full
:class:`~metazoo.engine.config.TrainConfig`, trains (or resumes) in ``out/runs/<name>`` and is
then scored per held-out task (``per_task.pt``). Its record, appended to ``runs.jsonl`` as it
ends, carries the configuration it was trained with: a later sweep into the same folder reuses
a run only if its configuration is the same, and refuses to mix in runs made with other
options. The caller owns the folder (its checks and lock).
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
from pathlib import Path

import torch
from tqdm import tqdm

from metazoo.engine import evaluate_params, rebuild_run, train
from metazoo.engine.config import TrainConfig
from metazoo.engine.layout import CHECKPOINT, LOG, read_log, read_records
from metazoo.engine.run import NOT_RESULTS
from metazoo.engine.stopping import Interrupted, deferred_signals
from metazoo.fileio import append_line, atomic_write_bytes, atomic_write_data
from metazoo.messages import brief

RECORDS = "runs.jsonl"
TABLE = "runs.csv"
RUNS = "runs"
PER_TASK = "per_task.pt"


def train_run(name: str, config: TrainConfig, run_dir: Path, threads: int = 0) -> dict:
    """Train (or resume) and evaluate one run; its record for ``runs.jsonl``, which carries
    the run's whole configuration, so that a later sweep never reuses it for others."""
    if threads:
        torch.set_num_threads(threads)
    resume = (run_dir / CHECKPOINT).is_file()
    summary = train(config, run_dir, resume=resume, overwrite=not resume, progress=False,
                    evaluate_at_end=False)
    setup, params, _ = rebuild_run(run_dir)
    values = evaluate_params(setup, params, per_task=True)
    atomic_write_bytes(run_dir / PER_TASK, lambda file: torch.save(values, file))
    skipped = sum(bool(record.get("skipped")) for record in read_log(run_dir / LOG))
    return {"name": name, "algorithm": config.algorithm, "k": config.inner_steps,
            "seed": config.seed, "iterations": summary["iterations"],
            "train_seconds": summary["train_seconds"],
            "ms_per_iteration": 1e3 * summary["median_seconds_per_iteration"],
            "skipped_batches": skipped, "config": config.to_dict(),
            **{f"{metric}@{step}": v.double().mean().item()
               for step, metrics in values.items() for metric, v in metrics.items()}}


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
        differing = stored.differences(wanted, ignore=NOT_RESULTS)
        if differing:
            first = differing[0]
            raise ValueError(
                f"{out} holds run {name} made with other options ({brief(differing)}; e.g. "
                f"{first} {getattr(stored, first)!r} there, {getattr(wanted, first)!r} now); "
                "give the same options, or choose another out folder")
    return records


def run_grid(cells: dict[str, TrainConfig], out: Path, *, jobs: int = 0,
             progress: bool = True, desc: str = "runs") -> list[dict]:
    """Train and evaluate every named run not finished yet; return all records in order.

    With ``jobs > 1`` the runs are trained in worker processes, each with cores/jobs
    threads; a record is appended to ``runs.jsonl`` (and ``runs.csv`` rewritten) as each run
    ends, in whatever order they finish, so an interrupted sweep loses at most the runs in
    flight (and those resume from their own checkpoints).
    """
    done = stored_records(cells, out)
    todo = [name for name in cells if name not in done]
    bar = tqdm(total=len(todo), disable=not progress, desc=desc, unit="run")

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
                finished(train_run(name, cells[name], out / RUNS / name))
        else:
            _in_workers(cells, out, todo, jobs, finished)
    finally:
        bar.close()
    return [done[name] for name in cells]


def _in_workers(cells: dict[str, TrainConfig], out: Path, todo: list[str], jobs: int,
                finished: Callable[[dict], None]) -> None:
    """Train the runs ``todo`` in ``jobs`` worker processes.

    On SIGINT or SIGTERM no new run starts; the runs in flight finish their iteration and
    save a checkpoint (Ctrl-C reaches the workers itself; SIGTERM is passed on to them), and
    the sweep stops with the signal's status.
    """
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # spawn, not fork: forking a process whose OpenMP pool has already run can hang.
    context = multiprocessing.get_context("spawn")
    with deferred_signals() as signalled, ProcessPoolExecutor(jobs, mp_context=context) as pool:
        pending = {pool.submit(train_run, name, cells[name], out / RUNS / name, threads)
                   for name in todo}
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
    """The records as CSV, atomically (the configuration is left out: it is in runs.jsonl)."""
    keys = sorted({key for record in records for key in record if key != "config"},
                  key=lambda k: (k not in ("name", "algorithm", "k", "seed"), k))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    atomic_write_data(path, text.getvalue().encode())
