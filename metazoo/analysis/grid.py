"""Train a grid of runs, resumably, side by side in worker processes; one record per run.

``metazoo compare`` and the benchmark scripts share this runner. A run is named, has a full
:class:`~metazoo.engine.config.TrainConfig`, trains (or resumes) in ``out/runs/<name>`` and is
then scored per held-out task (``per_task.pt``). Its record, appended to ``runs.jsonl`` as it
ends, holds the configuration it was trained with: a later sweep into the same folder reuses a
run only if its configuration is the same, and refuses to mix runs made with other options.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch
from tqdm import tqdm

from metazoo.engine.config import TrainConfig
from metazoo.engine.train import LOG, evaluate_params, load_run, train

RECORDS = "runs.jsonl"
TABLE = "runs.csv"
PER_TASK = "per_task.pt"


def train_run(name: str, config: TrainConfig, run_dir: Path, threads: int = 0) -> dict:
    """Train (or resume) and evaluate one run; its record for ``runs.jsonl``."""
    if threads:
        torch.set_num_threads(threads)
    resume = (run_dir / "checkpoint.pt").is_file()
    summary = train(config, run_dir, resume=resume, overwrite=not resume, progress=False,
                    evaluate_at_end=False)
    setup, params, _ = load_run(run_dir)
    values = evaluate_params(setup, params, per_task=True)
    torch.save(values, run_dir / PER_TASK)
    skipped = sum(json.loads(line)["skipped"]
                  for line in (run_dir / LOG).read_text().splitlines() if line.strip())
    return {"name": name, "algorithm": config.algorithm, "k": config.inner_steps,
            "seed": config.seed, "iterations": summary["iterations"],
            "train_seconds": summary["train_seconds"],
            "ms_per_iteration": 1e3 * summary["median_seconds_per_iteration"],
            "skipped_batches": skipped, "config": config.to_dict(),
            **{f"{metric}@{step}": v.double().mean().item()
               for step, metrics in values.items() for metric, v in metrics.items()}}


def read_records(out: Path) -> dict[str, dict]:
    """The finished runs recorded in ``out/runs.jsonl``, by name."""
    path = out / RECORDS
    done: dict[str, dict] = {}
    if path.is_file():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{path} line {number} is not a run record; move the file "
                                 "away or choose another out folder") from None
            if not isinstance(record, dict) or "name" not in record:
                raise ValueError(f"{path} line {number} is not a run record; move the file "
                                 "away or choose another out folder")
            done[record["name"]] = record
    return done


def run_grid(cells: dict[str, TrainConfig], out: Path, *, jobs: int = 0,
             progress: bool = True, desc: str = "runs") -> list[dict]:
    """Train and evaluate every named run not finished yet; return all records in order.

    With ``jobs > 1`` the runs are trained in worker processes, each with cores/jobs
    threads; a record is appended to ``runs.jsonl`` (and ``runs.csv`` rewritten) as each run
    ends, so an interrupted sweep loses at most the runs in flight (and those resume from
    their own checkpoints). A recorded run whose configuration differs from its cell's is
    refused, naming the options that differ.
    """
    out.mkdir(parents=True, exist_ok=True)
    done = read_records(out)
    for name, config in cells.items():
        if name in done and "config" in done[name]:
            stored = TrainConfig.from_dict(done[name]["config"])
            differing = stored.differences(config, ignore=("retain_memory",))
            if differing:
                raise ValueError(
                    f"{out / RECORDS} holds run {name} trained with other options ("
                    + ", ".join(f"{key}: {getattr(stored, key)!r} there, "
                                f"{getattr(config, key)!r} now" for key in differing[:4])
                    + "); choose another out folder or move the old one away")
    todo = [name for name in cells if name not in done]
    bar = tqdm(total=len(todo), disable=not progress, desc=desc, unit="run")

    def finished(record: dict) -> None:
        with open(out / RECORDS, "a") as file:
            file.write(json.dumps(record) + "\n")
        done[record["name"]] = record
        write_table(out / TABLE, list(done.values()))
        bar.set_postfix_str(record["name"])
        bar.update()

    jobs = min(jobs or min(2, os.cpu_count() or 1), len(todo)) or 1
    if jobs == 1:
        for name in todo:
            finished(train_run(name, cells[name], out / "runs" / name))
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        # spawn, not fork: forking a process whose OpenMP pool has already run can hang.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = [pool.submit(train_run, name, cells[name], out / "runs" / name, threads)
                       for name in todo]
            for future in as_completed(futures):
                finished(future.result())
    bar.close()
    return [done[name] for name in cells]


def write_table(path: Path, records: list[dict]) -> None:
    """The records as CSV (the configuration column left out: it is in runs.jsonl)."""
    rows = [{key: value for key, value in record.items() if key != "config"}
            for record in records]
    keys = sorted({key for row in rows for key in row},
                  key=lambda k: (k not in ("name", "algorithm", "k", "seed"), k))
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


__all__ = ["read_records", "run_grid", "train_run", "write_table"]
