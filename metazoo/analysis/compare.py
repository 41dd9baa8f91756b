"""``metazoo compare``: train every algorithm × inner steps × seed, then answer the questions
that motivate these methods, with numbers, 95% intervals, figures and derived statements.

1. Does second-order information beat first-order, and at which k does the gap close?
2. Is a learned θ good because its own loss is low, or because it is easy to optimise from?
3. What do the inner update paths look like?
4. How faithful is each cheap meta-gradient to the exact MAML one?
5. What does each cost, in time and memory, as k grows?

Every run gets the same number of meta-iterations (or the same ``--time-budget``), and is
scored on the same held-out tasks. Each finished run is appended to ``runs.jsonl`` and
``runs.csv``; an interrupted comparison resumes without redoing finished runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

from metazoo.analysis import report as rpt
from metazoo.analysis.config import UNBOUNDED, CompareConfig, grid_cells
from metazoo.analysis.grid import RECORDS, RUNS, TABLE, PerTask, run_grid, stored_records
from metazoo.analysis.sections import (
    contests,
    cost_by_k,
    fidelity,
    paths,
    second_order,
    start_or_gain,
)
from metazoo.analysis.toy import toy_blocks
from metazoo.engine.folder import check_out, locked_folder
from metazoo.engine.layout import LOCK
from metazoo.engine.tensorboard import check_tensorboard
from metazoo.fileio import write_json
from metazoo.messages import brief
from metazoo.stats import t_quantile

__all__ = ["UNBOUNDED", "CompareConfig", "compare", "grid_cells", "train_grid"]

#: What a comparison folder holds. ``compare.json`` (the options) marks a folder as one; a
#: folder holding anything else is never written into.
MARKER = "compare.json"
REPORT = "report"
COMPARE_FILES = (MARKER, RECORDS, TABLE, RUNS, REPORT, LOCK)


def _check_compare_folder(out: Path) -> None:
    """Refuse a folder that is neither empty nor a comparison's (it has no ``compare.json``)."""
    if not out.is_dir():
        return
    entries = sorted(path.name for path in out.iterdir() if path.name != LOCK)
    if entries and not (out / MARKER).is_file():
        raise ValueError(f"{out} holds files that are not a comparison ({brief(entries)}); "
                         "choose another out folder")


@contextlib.contextmanager
def _comparison_folder(config: CompareConfig, out: str | Path) -> Iterator[Path]:
    """Check ``out`` (writable, empty or a comparison's own, its runs made with these
    options), then hold its lock for the block; nothing is written before the checks."""
    out = check_out(out)
    check_tensorboard(config.tensorboard)
    _check_compare_folder(out)
    stored_records(grid_cells(config), out)
    with locked_folder(out, files=(MARKER, TABLE)):
        _check_compare_folder(out)  # again, under the lock
        write_json(out / MARKER, dataclasses.asdict(config))
        yield out


def train_grid(config: CompareConfig, out: str | Path, progress: bool = True) -> list[dict]:
    """Train and evaluate every (algorithm, k, seed) not finished yet; return all records.

    Holds the folder's lock while it runs (see :func:`~metazoo.analysis.grid.run_grid`).
    """
    with _comparison_folder(config, out) as folder:
        return run_grid(grid_cells(config), folder, score=PerTask(), jobs=config.jobs,
                        progress=progress, desc="compare")


def compare(config: CompareConfig, out: str | Path, progress: bool = True) -> Path:
    """Run the grid (resuming), then write the report; returns the report's ``index.md``.

    Everything is checked before anything is written: the options of every run, the folder
    (empty, or a comparison's own), and the runs it already holds (made with these options).
    The folder's lock is held throughout.
    """
    with _comparison_folder(config, out) as folder:
        records = run_grid(grid_cells(config), folder, score=PerTask(), jobs=config.jobs,
                           progress=progress, desc="compare")
        return _report(config, folder, records)


def _report(config: CompareConfig, out: Path, records: list[dict]) -> Path:
    metric = "accuracy" if any("accuracy@0" in r for r in records) else "loss"
    blocks: list = [rpt.title(f"metazoo compare: {config.task}"), rpt.paragraph(
        f"{len(records)} runs: algorithms {', '.join(config.algorithms)}; train k ∈ "
        f"{config.train_steps}; seeds {config.seeds}. Options: "
        + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(config).items()) + "."),
        rpt.paragraph(f"95% intervals: Student t over seeds (question 1) or over tasks; "
                      f"t quantile for {len(config.seeds)} seeds = "
                      f"{t_quantile(len(config.seeds) - 1):.3f}.")]
    blocks += second_order.blocks(config, records, metric)
    blocks += contests.blocks(config, records, metric)
    blocks += start_or_gain.blocks(config, out)
    blocks += paths.blocks(config, out)
    for source in fidelity.sources(config):
        blocks += fidelity.blocks(config, out, source)
    blocks += cost_by_k.blocks(config)
    if config.toy_iterations:
        blocks += toy_blocks(config.toy_iterations)
    numbers = {"config": dataclasses.asdict(config),
               "runs": [{k: v for k, v in r.items() if k != "config"} for r in records]}
    return rpt.write_report(out / REPORT, blocks, f"metazoo compare: {config.task}", numbers)
