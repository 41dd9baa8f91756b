"""A run folder read back: its checked checkpoint and setup (``rebuild_run``), the evaluation of
its θ on held-out tasks, and the results files."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import torch

from metazoo.algorithms import State, describe
from metazoo.engine.checkpoint import Checkpoint, read_checkpoint
from metazoo.engine.config import TrainConfig
from metazoo.engine.evaluate import concatenate, format_table, per_task_metrics, summarize
from metazoo.engine.folder import missing_checkpoint_message
from metazoo.engine.layout import CHECKPOINT, CONFIG, RESULTS, RESULTS_TABLE
from metazoo.engine.progress import progress_bar
from metazoo.engine.setup import Setup, build, held_out_batch
from metazoo.fileio import atomic_write_data, write_json
from metazoo.messages import brief
from metazoo.models import MODELS
from metazoo.tasks import TaskDistribution, sample_batches
from metazoo.types import Params

#: Options that change speed or memory, or what is written beside the results, not the
#: results: a resume may change them, and a grid reuses a run that differs only in them.
NOT_RESULTS = ("retain_memory", "tensorboard", "max_memory")


def read_run(run_dir: str | Path) -> Checkpoint:
    """The checkpoint of the run in ``run_dir``, checked (:func:`read_checkpoint`) and matched
    against the folder's ``config.json``, so that a checkpoint copied from another run is
    refused rather than resumed or scored as this one.

    Raises:
        FileNotFoundError: no checkpoint in ``run_dir``.
        ValueError: one line naming the file and the problem.
    """
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT).is_file():
        raise FileNotFoundError(missing_checkpoint_message(run_dir))
    checkpoint = read_checkpoint(run_dir / CHECKPOINT)
    path = run_dir / CONFIG
    if not path.is_file():  # a checkpoint shared on its own: its stored config is the run's
        return checkpoint
    try:
        written = TrainConfig.from_dict(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as error:
        raise ValueError(f"{path} is damaged ({brief([str(error)], width=120)}); the checkpoint "
                         "holds the run's config: delete the file to use that one") from None
    differing = written.differences(checkpoint.config, ignore=NOT_RESULTS)
    if differing:
        name = differing[0]
        raise ValueError(
            f"{checkpoint.path} does not belong to the run in {run_dir}: its {brief(differing)} "
            f"differ from {CONFIG} (e.g. {name}: {getattr(checkpoint.config, name)!r} in the "
            f"checkpoint, {getattr(written, name)!r} in {CONFIG}); put back the run's own "
            "checkpoint")
    return checkpoint


def check_model_named(config: TrainConfig, model: str | None, run_dir: str | Path) -> None:
    """User code is imported only when the user names it on this command: a run folder may
    come from someone else, and its config (or checkpoint) naming ``package.module:factory``
    is never enough to import it. Called before anything of the model is imported.

    Args:
        config: the run's stored config.
        model: the model the caller named (``--model``), or None.
        run_dir: the run folder, for the message.

    Raises:
        ValueError: the run's model is user code and ``model`` does not name it, or
            ``model`` is not the run's model.
    """
    if config.model not in MODELS and model != config.model:
        raise ValueError(
            f"the run in {run_dir} uses a model of user code, {config.model!r}; metazoo "
            "does not import code because a run folder names it: if you trust it, name it "
            f"yourself: --model {config.model} (model=... in Python)"
            + (f", not {model!r}" if model is not None else ""))
    if model is not None and model != config.model:
        raise ValueError(f"--model {model} is not this run's model ({config.model}); "
                         "drop it, or give the run's own")


def check_same_config(stored: TrainConfig, given: TrainConfig) -> None:
    """Refuse to resume a run with options other than its own, naming each one that differs
    with its stored and given values (options that change only speed are free to differ).

    Raises:
        ValueError: one line listing the differences.
    """
    differing = stored.differences(given, ignore=NOT_RESULTS)
    if differing:
        raise ValueError(
            "cannot resume with a different config; option(s) "
            + brief([f"{name} (stored {getattr(stored, name)!r}, given {getattr(given, name)!r})"
                     for name in differing], width=120))


def rebuild_run(run_dir: str | Path, model: str | None = None, **evaluation: Any
                ) -> tuple[Setup, Params, State, Checkpoint]:
    """Rebuild a finished (or checkpointed) run: its setup, θ, the method's carried state and
    the checkpoint (read in today's format).

    Args:
        run_dir: the run folder.
        model: the run's model when it is user code, named again to confirm that importing
            it is wanted (:func:`check_model_named`).
        **evaluation: options of the held-out evaluation to change (``eval_tasks``,
            ``eval_k_shot``, ``eval_steps``…), checked like any option.

    Raises:
        FileNotFoundError: no checkpoint in ``run_dir``.
        ValueError: one line, for any checkpoint or option that is refused, or a model of
            user code not named by ``model``.
    """
    checkpoint = read_run(run_dir)
    config = checkpoint.config
    check_model_named(config, model, run_dir)
    if evaluation:
        changed = [name for name in evaluation if not name.startswith("eval_")]
        if changed:
            raise ValueError(f"only evaluation options can be changed, not {brief(changed)}")
        config = dataclasses.replace(config, **evaluation)
    setup = dataclasses.replace(build(config), strategy=checkpoint.strategy,
                                chunk_size=checkpoint.chunk_size)
    checkpoint = checkpoint.fitted(setup)
    params, state = checkpoint.tensors(config.device, config.torch_dtype)
    return setup, params, state, checkpoint


def evaluate_params(setup: Setup, params: Params, state: State, *,
                    steps: list[int] | None = None,
                    num_tasks: int | None = None, eval_tasks: TaskDistribution | None = None,
                    seed: int | None = None, per_task: bool = False, progress: bool = False,
                    desc: str = "evaluation"):
    """Evaluate θ (with the method's carried ``state``) on the run's held-out tasks, drawn
    with ``seed`` (default ``eval_seed``, shared by all runs so that they pair).

    The tasks are those of one draw of ``num_tasks`` (default ``eval_tasks``), drawn and
    scored a batch at a time (:func:`held_out_batch`), so that memory holds one batch of
    tasks however many there are; with ``progress``, a bar named ``desc`` counts the tasks
    scored (on a terminal).

    Returns mean ± CI per step count, or with ``per_task=True`` the values of every task.
    """
    config = setup.config
    generator = torch.Generator().manual_seed(config.eval_seed if seed is None else seed)
    count, size = num_tasks or config.eval_tasks, held_out_batch(config)
    scored = []
    with progress_bar(progress, total=count, desc=desc, unit="task", leave=False) as bar:
        for batch in sample_batches(eval_tasks or setup.eval_tasks, count, size, generator):
            scored.append(per_task_metrics(
                setup.loss, params, batch.to(config.device, config.torch_dtype),
                steps=list(steps or config.eval_steps), method=setup.method, state=state,
                predict=setup.predict, transductive=config.eval_transductive,
                strategy=setup.strategy, chunk_size=size))
            bar.update(batch.num_tasks)
    values = concatenate(scored)
    return values if per_task else summarize(values)


def report_to_dict(report) -> dict[str, dict[str, dict[str, float]]]:
    """An evaluation report as plain JSON-ready numbers."""
    return {str(step): {metric: {"mean": e.mean, "ci95": e.ci95} for metric, e in values.items()}
            for step, values in report.items()}


def non_finite(report) -> str:
    """The first mean of ``report`` that is not finite, described ("" if all are)."""
    for step, values in report.items():
        for metric, estimate in values.items():
            if not math.isfinite(estimate.mean):
                return f"query {metric} after {step} test steps is {estimate.mean}"
    return ""


def protocol_name(config: TrainConfig, report) -> str:
    """How queries were classified, for a title (BatchNorm makes the two differ)."""
    if "accuracy" not in next(iter(report.values())):
        return ""
    return ", transductive" if config.eval_transductive else ", non-transductive"


def results_title(config: TrainConfig, report, iteration: int | None = None) -> str:
    """The one title of an evaluation's table (``results.md``, ``metazoo eval``): method,
    task, after how many iterations where known, tasks, K, test rule and protocol."""
    after = "" if iteration is None else f" after {iteration} iterations"
    return (f"{config.algorithm} on {config.task}{after}: {config.eval_tasks} held-out tasks, "
            f"K={config.eval_k_shot}, {describe(config.method()).test_rule}"
            + protocol_name(config, report))


def write_results(out: Path, config: TrainConfig, report, summary: dict[str, Any],
                  names: tuple[str, ...] = (RESULTS, RESULTS_TABLE)) -> None:
    """Write ``results.json`` and ``results.md`` (atomically), or only those of ``names``."""
    title = results_title(config, report)
    if RESULTS in names:
        write_json(out / RESULTS, {
            "config": config.to_dict(), "evaluation": report_to_dict(report),
            **{key: summary[key] for key in ("median_seconds_per_iteration", "strategy",
                                             "iterations", "train_seconds", "world_size")},
        })
    if RESULTS_TABLE in names:
        atomic_write_data(out / RESULTS_TABLE, (format_table(report, title) + "\n").encode())
