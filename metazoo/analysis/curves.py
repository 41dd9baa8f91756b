"""Learning curves of run folders, overlaid in one figure (``metazoo plot``).

Four panels: the meta-training loss (``log.jsonl``) and the validation score
(``validation.jsonl``, at the method's own test steps, else the largest recorded) against
meta-iterations and against the budget clock's seconds (``--budget-clock``, what
``--time-budget`` counts). The score is accuracy for classification, query loss for
regression. Each run is labelled by the options in which its ``config.json`` differs from the
others'; runs that differ in none are labelled by their folders.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure  # no pyplot: no backend, no global figures
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from metazoo.engine.config import TrainConfig
from metazoo.engine.layout import CONFIG, LOG, VALIDATION, read_log
from metazoo.engine.scoring import scored_steps
from metazoo.fileio import atomic_write_bytes
from metazoo.messages import brief

#: A label longer than this is cut (the legend sits below the panels, one run a line).
LABEL_LIMIT = 100


@dataclass(frozen=True)
class Curves:
    """One run's curves, as read from its folder.

    Args:
        folder: the run folder, as given.
        config: its resolved options (``config.json``).
        train: ``(iteration, budget seconds or None, loss)`` per logged iteration; the
            seconds are None in a log written before they were recorded.
        validation: ``(iteration, budget seconds, score)`` per validation point.
        metric: ``"accuracy"`` or ``"loss"``: what ``validation`` scores.
        steps: the number of test steps it scores.
    """

    folder: Path
    config: TrainConfig
    train: list[tuple[int, float | None, float]]
    validation: list[tuple[int, float, float]]
    metric: str
    steps: int


def read_curves(folder: str | Path) -> Curves:
    """The curves of the run in ``folder`` (finished, stopped or still training).

    Raises:
        ValueError: one line, for a folder that is not a run folder or whose files are
            damaged.
    """
    folder = Path(folder)
    path = folder / CONFIG
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder; name a run folder (one that "
                         f"'metazoo train' wrote)")
    if not path.is_file():
        raise ValueError(f"{folder} is not a run folder (it has no {CONFIG}); name a folder "
                         "that 'metazoo train' wrote")
    try:
        config = TrainConfig.from_dict(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as error:
        raise ValueError(f"{path} is damaged ({brief([str(error)], width=120)}); plot a run "
                         "whose config.json 'metazoo train' wrote") from None
    with _reading(folder / LOG):
        train = [(record["iteration"], _seconds(record.get("train_seconds")),
                  float(record["loss"])) for record in read_log(folder / LOG) if "loss" in record]
    with _reading(folder / VALIDATION):
        records = read_log(folder / VALIDATION)
        steps = scored_steps(config)
        metric = "accuracy" if any(key.startswith("accuracy@") for key in
                                   (records[0] if records else {})) else "loss"
        recorded = sorted({int(key.partition("@")[2]) for record in records for key in record
                           if key.startswith(f"{metric}@")})
        if recorded and steps not in recorded:  # e.g. Meta-SGD's own k, not among eval_steps
            steps = recorded[-1]
        validation = [(record["iteration"], float(record["train_seconds"]),
                       float(record[f"{metric}@{steps}"])) for record in records
                      if f"{metric}@{steps}" in record]
    return Curves(folder, config, train, validation, metric, steps)


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """A record of ``path`` without the fields and types its writer gives it is damage, said
    in one line (``read_log`` has checked that each line is an object with an iteration)."""
    try:
        yield
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, ValueError) and str(error).startswith(str(path)):
            raise  # read_log's own message names the file and line
        detail = f"no {error}" if isinstance(error, KeyError) else str(error)
        raise ValueError(f"{path} is damaged ({brief([detail], width=120)}); delete the "
                         "damaged lines, or plot another run") from None


def run_labels(runs: Sequence[Curves]) -> list[str]:
    """Each run's label: the options whose values differ between the runs, ``name=value``
    (the algorithm by its name alone; an algorithm's own options compared among the runs of
    that algorithm); its folder where none differs, or where two runs would read the same."""
    flat = [_flat(run.config) for run in runs]
    names = [name for name in dict.fromkeys(name for options in flat for name in options)
             if len({_shown(options[name]) for options in flat if name in options}) > 1]
    labels = []
    for values in flat:
        parts = [_shown(values[name]) if name == "algorithm" else f"{name}={_shown(values[name])}"
                 for name in names if name in values]
        label = ", ".join(parts)
        labels.append(label if len(label) <= LABEL_LIMIT else label[:LABEL_LIMIT - 1] + "…")
    alike = [not label or labels.count(label) > 1 for label in labels]
    return [(f"{label} ({run.folder})" if label else str(run.folder)) if same else label
            for label, same, run in zip(labels, alike, runs)]


def _flat(config: TrainConfig) -> dict[str, Any]:
    """A config's options by name, an algorithm's own as ``<algorithm>.<option>`` (compared
    only with the same algorithm's)."""
    values = config.to_dict()
    own = values.pop("algorithm_options")
    return {**values, **{f"{config.algorithm}.{name}": value for name, value in own.items()}}


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(_shown(item) for item in value)
    return str(value)


def curves_figure(runs: Sequence[Curves]) -> Figure:
    """One figure of ``runs``' curves: training loss (top) and validation score (bottom),
    against meta-iterations (left) and budget seconds (right), one colour per run. A noisy
    training loss (many logged iterations) is drawn faintly as logged, with its running mean
    over it.

    Raises:
        ValueError: runs whose validation curves score different things (accuracy and
            loss), which one axis cannot show.
    """
    scored = [run for run in runs if run.validation]
    metrics = {run.metric for run in scored}
    if len(metrics) > 1:
        raise ValueError("the runs' validation curves score different things (accuracy for "
                         "some, loss for others); plot classification and regression runs "
                         "apart")
    metric = metrics.pop() if metrics else "loss"
    scale = 100.0 if metric == "accuracy" else 1.0  # accuracy in percent
    labels = run_labels(runs)
    figure = Figure(figsize=(11, 7.5), layout="constrained")
    axes = figure.subplots(2, 2, sharey="row", squeeze=False)
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    smoothed = False
    for index, run in enumerate(runs):
        colour = colours[index % len(colours)]
        timed = [point for point in run.train if point[1] is not None]
        for axis, points, x in ((axes[0][0], run.train, 0), (axes[0][1], timed, 1)):
            smoothed |= _draw(axis, [p[x] for p in points], [p[2] for p in points], colour,
                              smooth=True)
        for axis, x in ((axes[1][0], 0), (axes[1][1], 1)):
            _draw(axis, [p[x] for p in run.validation], [p[2] * scale for p in run.validation],
                  colour, smooth=False)
    steps = sorted({run.steps for run in scored})
    at = f"after {steps[0]} test steps" if len(steps) == 1 else "at each run's test steps"
    axes[0][0].set_ylabel("meta-training loss")
    axes[1][0].set_ylabel("validation accuracy (%)" if metric == "accuracy"
                          else "validation query loss")
    how = " (faint: as logged; line: running mean)" if smoothed else ""
    axes[0][0].set_title(f"meta-training loss{how}", fontsize=10)
    axes[0][1].set_title("meta-training loss by budget seconds", fontsize=10)
    axes[1][0].set_title(f"validation {metric} {at}" if scored else "validation", fontsize=10)
    axes[1][1].set_title(f"validation {metric} by budget seconds" if scored else "validation",
                         fontsize=10)
    clocks = {run.config.budget_clock for run in runs}
    seconds = (f"meta-training seconds ({clocks.pop()} clock)" if len(clocks) == 1
               else "meta-training seconds (each run's budget clock)")
    for row in axes:
        row[0].set_xlabel("meta-iteration")
        row[0].xaxis.set_major_locator(MaxNLocator(integer=True))
        row[1].set_xlabel(seconds)
        for axis in row:
            axis.grid(alpha=0.3)
    _log_scale_if_wide(axes[0][0], [point[2] for run in runs for point in run.train])
    if metric == "loss":
        _log_scale_if_wide(axes[1][0], [point[2] for run in scored for point in run.validation])
    _notes(axes, runs)
    figure.suptitle(_title(runs))
    # One legend for every panel, below them, so that it never hides a curve.
    shown = [label + _missing(run, len(steps) > 1) for run, label in zip(runs, labels)]
    handles = [Line2D([], [], color=colours[index % len(colours)], linewidth=1.6)
               for index in range(len(runs))]
    columns = 1 if max(len(label) for label in shown) > 40 else min(len(shown), 3)
    figure.legend(handles, shown, loc="outside lower center", ncol=columns, fontsize=9,
                  frameon=False)
    return figure


def _draw(axis, xs: list[float], ys: list[float], colour: str, *, smooth: bool) -> bool:
    """One run's curve on ``axis``: markers where there are few points (each a measurement);
    with ``smooth`` and many points, faint as measured under a running mean. Returns whether
    it was smoothed."""
    if not xs:
        return False
    window = len(xs) // 10 if smooth else 0
    if window < 3:
        marks = {"marker": "o", "markersize": 3} if len(xs) <= 40 else {}
        axis.plot(xs, ys, color=colour, linewidth=1.4, **marks)
        return False
    axis.plot(xs, ys, color=colour, linewidth=0.8, alpha=0.25)
    axis.plot(xs, _running_mean(ys, window), color=colour, linewidth=1.6)
    return True


def _running_mean(values: list[float], window: int) -> list[float]:
    """The mean of each value and the ``window - 1`` before it (fewer at the start); points
    that are not finite (skipped batches) are left out of the means."""
    means = []
    for index in range(len(values)):
        finite = [v for v in values[max(0, index - window + 1):index + 1] if math.isfinite(v)]
        means.append(sum(finite) / len(finite) if finite else math.nan)
    return means


def _log_scale_if_wide(axis, values: list[float]) -> None:
    """A log scale for positive values spanning more than a decade (a loss falling from 1 to
    0.01 would otherwise be a flat line after the first few points), ticks in plain numbers."""
    finite = [value for value in values if math.isfinite(value)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 10:
        axis.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        axis.yaxis.set_major_formatter(plain)
        axis.yaxis.set_minor_formatter(FuncFormatter(
            lambda value, _: f"{value:g}" if f"{value:.0e}"[0] in "25" else ""))


def _missing(run: Curves, steps: bool) -> str:
    """What a run's legend entry adds: its validation's test steps (``steps``: where the runs'
    differ), or the curves it lacks."""
    notes = []
    if not run.validation:
        notes.append("no validation.jsonl")
    elif steps:
        notes.append(f"{run.steps} test step{'s' if run.steps != 1 else ''}")
    if any(point[1] is None for point in run.train):
        notes.append("no budget seconds in its log")
    return f" ({'; '.join(notes)})" if notes else ""


def _notes(axes, runs: Sequence[Curves]) -> None:
    """Say in an empty panel why it is empty."""
    def note(axis, text: str) -> None:
        axis.text(0.5, 0.5, text, transform=axis.transAxes, ha="center", va="center",
                  fontsize=9, color="0.35")
        if not axis.lines:  # no scale to read: no ticks either
            axis.set(xticks=[], yticks=[], xlabel="", ylabel="")
            axis.grid(False)

    if not any(run.train for run in runs):
        for axis in axes[0]:
            note(axis, "no meta-iteration logged yet")
    elif not any(point[1] is not None for run in runs for point in run.train):
        note(axes[0][1], "no budget seconds in log.jsonl\n(written before they were logged)")
    if not any(run.validation for run in runs):
        for axis in axes[1]:
            note(axis, "no validation.jsonl\n(train with --val-every N for a validation curve)")


def _title(runs: Sequence[Curves]) -> str:
    """What the runs share: the task, and the method where it is one."""
    tasks = sorted({run.config.task for run in runs})
    algorithms = sorted({run.config.algorithm for run in runs})
    title = ", ".join(tasks)
    if len(algorithms) == 1:
        title += f", {algorithms[0]}"
    return title + f": {len(runs)} run{'s' if len(runs) > 1 else ''}"


def plot_runs(folders: Sequence[str | Path], out: str | Path) -> Path:
    """Read the runs in ``folders``, draw :func:`curves_figure` and save it as the PNG ``out``
    (written atomically).

    Raises:
        ValueError: as :func:`read_curves` and :func:`curves_figure`.
    """
    runs = [read_curves(folder) for folder in folders]
    figure = curves_figure(runs)
    atomic_write_bytes(out, lambda file: figure.savefig(file, format="png", dpi=110))
    return Path(out)


__all__ = ["Curves", "curves_figure", "plot_runs", "read_curves", "run_labels"]
