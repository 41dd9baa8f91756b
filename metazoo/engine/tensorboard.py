"""TensorBoard event files beside a run's own records (``--tensorboard``).

The run's ``log.jsonl``, ``validation.jsonl`` and ``results.json`` stay its record; the events
in ``<out>/tensorboard/`` repeat them for TensorBoard (``tensorboard --logdir runs/``):

* ``train/<statistic>`` at every logged iteration: ``train/loss``, ``train/seconds per
  iteration`` and any other statistic the method reports (iMAML's ``train/cg residual``);
* ``validation/<metric> after <k> steps`` at every point of the validation curve;
* ``results/<metric> after <k> steps`` once the run is scored, with the run's options as
  hyperparameters (TensorBoard's HPARAMS tab then sets runs side by side).

A resumed run writes from its checkpoint's iteration on and marks the events a stopped process
wrote after that checkpoint as purged, so no step is shown twice. Nothing is written to the
folder until there is something to write (a finished run resumed changes nothing). Only the
writing process of a run (rank 0) writes events.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from metazoo.engine.config import TrainConfig
from metazoo.engine.layout import TENSORBOARD, VALIDATION, read_log
from metazoo.fileio import file_kind


def check_tensorboard(wanted: bool, out: Path | None = None) -> None:
    """Refuse ``--tensorboard`` where the ``tensorboard`` package cannot be imported, or where
    the run folder ``out`` holds something other than a folder under the events' name; called
    before a run (or a grid or search of runs) touches its folder.

    Raises:
        ValueError: one line naming the fix.
    """
    if not wanted:
        return
    try:
        import torch.utils.tensorboard  # noqa: F401 - it imports the tensorboard package
    except ImportError:
        raise ValueError("tensorboard needs the tensorboard package, which is not installed: "
                         "pip install 'metazoo[tensorboard]', or leave the option off"
                         ) from None
    if out is None:
        return
    kind = file_kind(out / TENSORBOARD)
    if kind not in ("missing", "a folder"):
        raise ValueError(f"tensorboard cannot write its event files to {out / TENSORBOARD}: "
                         f"it is {kind}; move it away, or leave the option off")
    if kind == "a folder" and not os.access(out / TENSORBOARD, os.W_OK | os.X_OK):
        raise ValueError(f"tensorboard cannot write its event files to {out / TENSORBOARD}: "
                         "it is not writable; make it writable, or leave the option off")


def steps_tag(group: str, metric: str, steps: int | str) -> str:
    """The tag of ``metric`` after ``steps`` test steps, e.g. ``validation/loss after 5 steps``."""
    return f"{group}/{metric} after {steps} steps"


def hyperparameters(config: TrainConfig) -> dict[str, int | float | str]:
    """The run's options as TensorBoard hyperparameters: numbers and strings as they are, the
    method's own options as ``algorithm_options.<name>``, anything else (lists, booleans) as
    its JSON text."""
    options = config.to_dict()
    own = options.pop("algorithm_options")
    flat = {**options, **{f"algorithm_options.{name}": value for name, value in own.items()}}
    return {name: value if isinstance(value, (int, float, str)) and not isinstance(value, bool)
            else json.dumps(value) for name, value in flat.items()}


class Board:
    """A run's TensorBoard writer, or nothing when the run does not write events (its option
    is off, or this process is not the run's writing rank). A context manager: leaving it
    closes the event files."""

    def __init__(self, config: TrainConfig, out: Path, lead: bool = True) -> None:
        self.enabled = lead and config.tensorboard
        self.folder = out / TENSORBOARD
        self.purge_step: int | None = None
        self._writer = None

    def resume(self, iteration: int) -> None:
        """The run continues from its checkpoint at ``iteration``: events after it, written by
        the process that stopped, are purged, as the run's logs are truncated."""
        self.purge_step = iteration + 1

    def _events(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.folder), purge_step=self.purge_step)
        return self._writer

    def train(self, record: dict[str, Any]) -> None:
        """A ``log.jsonl`` record: each of its statistics at its iteration (not the budget
        seconds so far, which are the record's clock, not a statistic)."""
        if not self.enabled:
            return
        for key, value in record.items():
            if key not in ("iteration", "skipped", "train_seconds"):
                self._events().add_scalar(f"train/{key.replace('_', ' ')}", value,
                                          record["iteration"])

    def validation(self, record: dict[str, Any]) -> None:
        """A ``validation.jsonl`` record: each ``<metric>@<steps>`` at its iteration."""
        if not self.enabled:
            return
        for key, value in record.items():
            if "@" in key:
                metric, steps = key.split("@")
                self._events().add_scalar(steps_tag("validation", metric, steps), value,
                                          record["iteration"])

    def results(self, config: TrainConfig, report, iteration: int) -> None:
        """The run's end: its options as hyperparameters, and as their metrics the final
        results of ``report`` (if it was scored; written at ``iteration``) and the metrics of
        its validation curve (if it has one; already written)."""
        if not self.enabled:
            return
        from torch.utils.tensorboard.summary import hparams

        final = {} if report is None else {
            steps_tag("results", metric, step): estimate.mean
            for step, values in report.items() for metric, estimate in values.items()}
        curve = read_log(self.folder.parent / VALIDATION)
        metrics = {**final, **{steps_tag("validation", *key.split("@")): value
                               for key, value in (curve[-1] if curve else {}).items()
                               if "@" in key}}
        writer = self._events()
        # The hyperparameters plugin reads the metrics' values from the run's scalars: the
        # summaries name them, and the final results are written as scalars here.
        for summary in hparams(hyperparameters(config), metrics):
            writer.file_writer.add_summary(summary, iteration)
        for tag, value in final.items():
            writer.add_scalar(tag, value, iteration)

    def flush(self) -> None:
        """Write what is buffered (called with every checkpoint, so that a run killed later
        keeps every event up to the iteration it resumes from)."""
        if self._writer is not None:
            self._writer.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


__all__ = ["Board", "check_tensorboard", "hyperparameters", "steps_tag"]
