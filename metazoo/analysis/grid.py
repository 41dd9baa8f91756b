"""Train a grid of runs, resumably, side by side in worker processes; one record per run.

``metazoo compare`` and the benchmark scripts share this runner. A run is named, has a full
:class:`~metazoo.engine.config.TrainConfig`, trains (or resumes) in ``out/runs/<name>`` and is
then scored per held-out task (``per_task.pt``). Its record, appended to ``runs.jsonl`` as it
ends, holds the configuration it was trained with: a later sweep into the same folder reuses a
run only if its configuration is the same, and refuses to mix runs made with other options.

The folder is checked before anything is written (it must be empty or a grid's own: a
``runs.jsonl`` of records, ``runs.csv``, ``runs/``, ``report/``), and locked while the grid
runs (:func:`open_grid`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, CancelledError, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from metazoo.engine import evaluate_params, load_run, train
from metazoo.engine.config import TrainConfig
from metazoo.engine.folder import check_out, locked_folder
from metazoo.engine.layout import CHECKPOINT, LOCK, LOG, read_log
from metazoo.engine.layout import read_records as read_jsonl
from metazoo.engine.run import NOT_RESULTS
from metazoo.engine.stopping import Interrupted, deferred_signals
from metazoo.fileio import append_line, atomic_write_bytes, atomic_write_data
from metazoo.messages import brief

RECORDS = "runs.jsonl"
TABLE = "runs.csv"
RUNS = "runs"
REPORT = "report"
#: Beside each run's own files (engine.layout): its per-task evaluation.
PER_TASK = "per_task.pt"
#: What a grid's folder may hold.
GRID_ENTRIES = (RECORDS, TABLE, RUNS, REPORT, LOCK)


def train_run(name: str, config: TrainConfig, run_dir: Path, threads: int = 0) -> dict:
    """Train (or resume) and evaluate one run; its record for ``runs.jsonl``."""
    if threads:
        torch.set_num_threads(threads)
    resume = (run_dir / CHECKPOINT).is_file()
    summary = train(config, run_dir, resume=resume, overwrite=not resume, progress=False,
                    evaluate_at_end=False)
    setup, params, _ = load_run(run_dir)
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


def read_records(out: Path) -> dict[str, dict]:
    """The finished runs recorded in ``out/runs.jsonl``, by name.

    A record torn by a kill mid-write (the last line, without its newline) is dropped: that
    run is simply trained or resumed again. Any other line that is not a run record with its
    configuration is refused, naming the file and line.
    """
    records = read_jsonl(out / RECORDS, lambda record: isinstance(record.get("name"), str)
                         and isinstance(record.get("config"), dict),
                         "a run record with its configuration")
    return {record["name"]: record for record in records}


def _check_records(cells: dict[str, TrainConfig], out: Path) -> None:
    """Refuse a recorded run whose configuration differs from its cell's, naming the options."""
    done = read_records(out)
    for name, config in cells.items():
        if name not in done:
            continue
        try:
            stored = TrainConfig.from_dict(done[name]["config"])
        except (ValueError, TypeError) as error:
            raise ValueError(f"{out / RECORDS}: the record of {name} holds an invalid "
                             f"configuration ({brief([str(error)], width=100)}); choose another "
                             "out folder") from None
        differing = stored.differences(config, ignore=NOT_RESULTS)
        if differing:
            raise ValueError(
                f"{out / RECORDS} holds run {name} trained with other options ("
                + brief([f"{key}: {getattr(stored, key)!r} there, {getattr(config, key)!r} now"
                         for key in differing], limit=4, width=80)
                + "); give the same options, or choose another out folder")


def _check_folder(out: Path) -> None:
    """Refuse a folder that is neither empty nor a grid's own (whose runs.jsonl it writes)."""
    if not out.is_dir():
        return
    entries = sorted(path.name for path in out.iterdir() if path.name != LOCK)
    foreign = [name for name in entries if name not in GRID_ENTRIES]
    # Without runs.jsonl only runs/ may be there: a grid stopped before its first record.
    unrecorded = RECORDS not in entries and any(name not in (RUNS,) for name in entries)
    if foreign or unrecorded:
        raise ValueError(f"{out} holds files that are not a comparison's ("
                         f"{brief(foreign or entries)}); choose another out folder")


@dataclass
class Grid:
    """A grid's folder, checked and locked (see :func:`open_grid`)."""

    cells: dict[str, TrainConfig]
    out: Path

    def run(self, *, jobs: int = 0, progress: bool = True, desc: str = "runs") -> list[dict]:
        """Train and evaluate every named run not finished yet; return all records in order.

        With ``jobs > 1`` the runs are trained in worker processes, each with cores/jobs
        threads; a record is appended to ``runs.jsonl`` (and ``runs.csv`` rewritten) as each
        run ends, so an interrupted sweep loses at most the runs in flight (and those resume
        from their own checkpoints).
        """
        cells, out = self.cells, self.out
        done = read_records(out)
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
                self._in_workers(todo, jobs, finished)
        finally:
            bar.close()
        return [done[name] for name in cells]

    def _in_workers(self, todo: list[str], jobs: int, finished) -> None:
        """Train the runs ``todo`` in ``jobs`` worker processes.

        On SIGINT or SIGTERM no new run starts; the runs in flight finish their iteration and
        save a checkpoint (Ctrl-C reaches the workers itself; SIGTERM is passed on to them),
        and the grid stops with the signal's status.
        """
        threads = max(1, (os.cpu_count() or 1) // jobs)
        # spawn, not fork: forking a process whose OpenMP pool has already run can hang.
        context = multiprocessing.get_context("spawn")
        with deferred_signals() as signalled, \
                ProcessPoolExecutor(jobs, mp_context=context) as pool:
            pending = {pool.submit(train_run, name, self.cells[name], self.out / RUNS / name,
                                   threads) for name in todo}
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
            raise Interrupted(signalled(), None, self.out)


@contextlib.contextmanager
def open_grid(cells: dict[str, TrainConfig], out: str | Path) -> Iterator[Grid]:
    """Check ``out`` (writable; empty or a grid's own; its recorded runs made with these
    options), then hold its lock for the block. Nothing is written before the checks.

    Raises:
        ValueError: one line naming the folder and the problem.
    """
    out = check_out(out, "out")
    _check_folder(out)
    _check_records(cells, out)
    with locked_folder(out, files=(TABLE,)):
        _check_folder(out)  # again, under the lock: another process may have written it
        _check_records(cells, out)
        yield Grid(cells, out)


def run_grid(cells: dict[str, TrainConfig], out: Path, *, jobs: int = 0,
             progress: bool = True, desc: str = "runs") -> list[dict]:
    """Train and evaluate every named run not finished yet, holding the folder's lock (see
    :func:`open_grid` and :meth:`Grid.run`); return all records in order."""
    with open_grid(cells, out) as grid:
        return grid.run(jobs=jobs, progress=progress, desc=desc)


def write_table(path: Path, records: list[dict]) -> None:
    """The records as CSV, atomically (the configuration column left out: it is in
    runs.jsonl)."""
    rows = [{key: value for key, value in record.items() if key != "config"}
            for record in records]
    keys = sorted({key for row in rows for key in row},
                  key=lambda k: (k not in ("name", "algorithm", "k", "seed"), k))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_data(path, text.getvalue().encode())


__all__ = ["Grid", "open_grid", "read_records", "run_grid", "train_run", "write_table"]
