"""The outer loop: sample tasks, average per-task meta-gradients, step θ; checkpoint and resume.

State lives here and only here: θ, the outer optimizer, the task generator and the log. What
the loop stands on has its own module: the run folder's names (:mod:`~metazoo.engine.layout`),
its checks and lock (:mod:`~metazoo.engine.folder`), the checkpoint reader
(:mod:`~metazoo.engine.checkpoint`), ranks under ``torchrun``
(:mod:`~metazoo.engine.distributed`), signals (:mod:`~metazoo.engine.stopping`).

Every check comes first: options, the folder, the data, the checkpoint to resume, and one
rehearsal step of the algorithm on one task. Only then does the run delete or write a file.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from metazoo._version import __version__
from metazoo.algorithms import State, meta_gradient
from metazoo.core.tree import flatten, unflatten
from metazoo.engine.checkpoint import FORMAT, Checkpoint, save_checkpoint
from metazoo.engine.config import TrainConfig
from metazoo.engine.distributed import Ranks, all_reduce_mean, any_rank, barrier, init_ranks
from metazoo.engine.folder import check_out, locked_folder, prepare_new_run
from metazoo.engine.layout import (
    CHECKPOINT,
    CONFIG,
    LOG,
    RESULTS,
    RESULTS_TABLE,
    VALIDATION,
    log_text,
    read_log,
)
from metazoo.engine.outer import apply_step
from metazoo.engine.progress import advance, training_bar
from metazoo.engine.run import (
    check_same_config,
    evaluate_params,
    read_run,
)
from metazoo.engine.scoring import (
    NonFiniteError,
    final_evaluation,
    validate,
    validate_if_missing,
)
from metazoo.engine.setup import (
    Setup,
    build,
    check_device,
    configure_process,
    initial_meta_params,
    make_optimizer,
)
from metazoo.engine.stopping import Interrupted, Requests, Stopped, deferred_signals
from metazoo.engine.strategy import Choice, choose_strategy
from metazoo.engine.tensorboard import Board, check_tensorboard
from metazoo.fileio import append_line, atomic_write_data, write_json
from metazoo.types import Params


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    evaluate_at_end: bool = True,
    held_out: str = "test",
    on_validation: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Meta-train θ and (by default) evaluate it on held-out tasks.

    Writes ``config.json``, ``log.jsonl``, ``checkpoint.pt`` (atomically, at the start, every
    ``checkpoint_every`` iterations and at the end), ``results.{json,md}`` and, with
    ``config.tensorboard``, TensorBoard events (:mod:`~metazoo.engine.tensorboard`) to ``out``,
    and holds the folder's lock while it runs (removing the lock file as it ends). With
    ``resume=True`` it continues from ``out/checkpoint.pt``; the result is bit-identical to an
    uninterrupted run on the same machine. Resuming a finished run changes nothing.
    ``overwrite=True`` deletes a previous run's files in ``out``, once everything else has been
    checked. ``progress`` draws bars on a terminal's stderr (:mod:`~metazoo.engine.progress`):
    meta-training's (the time budget's seconds when there is one, else the iterations), and the
    tasks scored at each validation point and in the final evaluation.

    Under ``torchrun`` every process draws the same global batch from the seeded task stream
    and computes its own disjoint share of it; the meta-gradients are all-reduced, so θ does
    not depend on the number of processes (to float rounding). Rank 0 alone writes files.

    A search (``metazoo tune``) trains each trial with ``held_out="val"`` (every held-out
    task, the rehearsal's included, comes from the split's validation part, so the test part
    is never read) and ``on_validation``, called with each record of the validation curve
    once it is written (but not with the point a signal's stop makes); an exception it raises
    (a pruned trial) ends the run there, its last checkpoint kept.

    Returns:
        A summary with the final θ, the evaluation report (``report``) and timings;
        ``finished_before: True`` when the run had already finished.

    Raises:
        ValueError: an option, the folder or the checkpoint is refused (nothing was changed).
        NonFiniteError: the run produced no usable θ (its last good checkpoint is kept).
        Interrupted: SIGINT or SIGTERM stopped it, after writing a checkpoint.
    """
    out = check_out(out)
    config = config.resolve()
    check_tensorboard(config.tensorboard, out)
    check_device(config.device)
    ranks, device = init_ranks(config.device, config.meta_batch)
    setup = build(config, held_out)  # before touching the folder: impossible tasks or missing data fail first
    configure_process(config)
    params, state = initial_meta_params(setup, device)
    rehearse(setup, params, state, device)
    if ranks.lead and resume:  # refuse what can be refused before the folder gets a lock file
        _resumable(out, setup)
    elif ranks.lead:
        prepare_new_run(out, overwrite, check_only=True)
    # A new run measures its strategy now (a limit nothing fits under is refused before the
    # folder changes); a resumed one keeps the choice its checkpoint holds.
    low, high = ranks.shard(config.meta_batch)
    choice = None if resume else choose_strategy(setup, params, state, device, high - low)
    with locked_folder(out, ranks.lead), deferred_signals() as signalled, \
            Board(config, out, ranks.lead) as board:
        checkpoint = None
        if ranks.lead:  # again, under the lock: another process may have changed the folder
            checkpoint = _resumable(out, setup) if resume else prepare_new_run(out, overwrite)
        barrier(ranks)
        if resume and not ranks.lead:
            checkpoint = read_run(out).fitted(setup)
        # A resumed run keeps the measured choice of its checkpoint: a bit-identical resume.
        chosen = checkpoint if checkpoint is not None else choice
        setup = dataclasses.replace(setup, strategy=chosen.strategy,
                                    chunk_size=chosen.chunk_size)
        if checkpoint is not None and checkpoint.finished:
            return _finished(setup, out, checkpoint, params, state, ranks, evaluate_at_end,
                             signalled, board, progress)
        return _run(setup, out, checkpoint, params, state, device, ranks, signalled, progress,
                    evaluate_at_end, on_validation, board, choice)


def rehearse(setup: Setup, params: Params, state: State, device: str) -> None:
    """One meta-gradient and one test-time step on one task, drawn from generators of their
    own (the training stream does not move): whatever fails for this algorithm, model and
    task fails here, before the run changes its folder. ``auto`` rehearses the loop, the
    strategy that needs least memory: vmap is tried once its memory is predicted to fit
    (:func:`~metazoo.engine.strategy.choose_strategy`)."""
    config = setup.config
    strategy = "vmap" if setup.strategy == "vmap" else "loop"
    batch = setup.tasks.sample(1, torch.Generator().manual_seed(config.seed + 2))
    meta_gradient(setup.method, setup.loss, params, state,
                  batch.to(device, config.torch_dtype), strategy=strategy)
    evaluate_params(dataclasses.replace(setup, strategy=strategy), params, state, steps=[1],
                    num_tasks=1)


def _resumable(out: Path, setup: Setup) -> Checkpoint:
    """The checkpoint to resume from, checked against the folder and the config given."""
    checkpoint = read_run(out)
    check_same_config(checkpoint.config, setup.config)
    return checkpoint.fitted(setup)


def _finished(setup: Setup, out: Path, checkpoint: Checkpoint, params: Params, state: State,
              ranks: Ranks, evaluate_at_end: bool, signalled: Requests, board: Board,
              progress: bool) -> dict[str, Any]:
    """A finished run, resumed: it can always be finished again. A validation point or
    results that are missing (a stop or a kill while they were being computed) are computed
    and written; nothing else changes."""
    params = {name: value.to(params[name]) for name, value in checkpoint.params.items()}
    state = _restored(checkpoint.state, state)
    summary = _summary(setup, out, checkpoint.iteration, checkpoint.train_seconds, [], params,
                       ranks)
    summary["finished_before"] = True
    summary["state"] = state
    if not ranks.lead:
        return summary
    rewritten = []
    board.resume(checkpoint.iteration)
    if validate_if_missing(setup, params, state, out, checkpoint, signalled, finished=True,
                           progress=progress):
        rewritten.append(f"the last point of {VALIDATION}")
        board.validation(read_log(out / VALIDATION)[-1])
    missing = tuple(name for name in (RESULTS, RESULTS_TABLE) if not (out / name).is_file())
    if evaluate_at_end and missing:
        _scored(setup, params, state, out, checkpoint.iteration, summary, signalled, board,
                missing, progress)
        rewritten += missing
    summary["rewritten"] = rewritten
    return summary


def _restored(stored: State, like: State) -> State:
    """The carried state read from a checkpoint, on the device and in the dtype of ``like``
    (the run's fresh state)."""
    values = flatten(stored)
    return unflatten({name: values[name].to(value) for name, value in flatten(like).items()},
                     like)


def _run(setup: Setup, out: Path, checkpoint: Checkpoint | None, params: Params, state: State,
         device: str, ranks: Ranks, signalled, progress: bool, evaluate_at_end: bool,
         on_validation: Callable[[dict[str, Any]], None] | None, board: Board,
         choice: Choice | None) -> dict[str, Any]:
    config, lead = setup.config, ranks.lead
    spent = {"seconds": 0.0}  # the budget clock, for a schedule that follows the time budget
    optimizer, scheduler = make_optimizer(config, params, lambda: spent["seconds"])
    generator = torch.Generator().manual_seed(config.seed)
    start, trained_seconds, skipped = 0, 0.0, 0
    if checkpoint is not None:
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(checkpoint.params[name])
        state = _restored(checkpoint.state, state)
        optimizer.load_state_dict(checkpoint.optimizer)
        scheduler.load_state_dict(dict(checkpoint.scheduler))
        generator.set_state(checkpoint.generator)
        start, trained_seconds, skipped = (checkpoint.iteration, checkpoint.train_seconds,
                                           checkpoint.skipped)
        spent["seconds"] = trained_seconds
    if lead and checkpoint is not None:
        board.resume(start)
        _truncate_log(out / LOG, start)
        _truncate_log(out / VALIDATION, start)
        if validate_if_missing(setup, params, state, out, checkpoint, signalled, finished=False,
                               progress=progress):
            board.validation(read_log(out / VALIDATION)[-1])
    elif lead:
        write_json(out / CONFIG, config.to_dict())
        if choice.record is not None:  # what auto measured and chose: the log's first record
            with open(out / LOG, "a") as log:
                append_line(log, json.dumps(choice.record))

    def save(iteration: int) -> None:
        if lead:
            save_checkpoint(out / CHECKPOINT, {
                "format": FORMAT,
                "version": __version__,
                "config": config.to_dict(),
                "iteration": iteration,
                "params": {name: p.detach().cpu() for name, p in params.items()},
                "state": unflatten({name: value.detach().cpu()
                                    for name, value in flatten(state).items()}, state),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "generator": generator.get_state(),
                "strategy": setup.strategy,
                "chunk_size": setup.chunk_size,
                "train_seconds": trained_seconds,
                "skipped": skipped,
            })
            board.flush()

    if checkpoint is None:
        save(0)  # a run that fails at its first iteration still leaves θ₀ to resume from
    if any_rank(ranks, bool(signalled()))[0]:  # asked to stop while it was being set up
        raise Interrupted(signalled() or 2, start, out)
    low, high = ranks.shard(config.meta_batch)
    seconds: list[float] = []
    done = start
    progress = progress and lead
    bar = training_bar(config, start, trained_seconds, progress)
    logged_loss = None  # the last loss logged, shown on the bar
    log = open(out / LOG, "a") if lead else None  # noqa: SIM115 - closed in finally
    try:
        clock = time.process_time if config.budget_clock == "cpu" else time.perf_counter
        for iteration in range(start, config.iterations):
            began = time.perf_counter()
            began_budget = clock()
            # Every rank draws the whole global batch, so the stream is the same for any
            # number of processes, then keeps its own share.
            batch = setup.tasks.sample(config.meta_batch, generator)
            batch = batch.slice(low, high).to(device, config.torch_dtype)
            grads, stats, new_state = meta_gradient(setup.method, setup.loss, params, state,
                                                    batch, strategy=setup.strategy,
                                                    chunk_size=setup.chunk_size)
            if ranks.world > 1:
                grads, stats, new_state = all_reduce_mean(grads, stats, new_state, high - low,
                                                          config.meta_batch)
            finite = all(torch.isfinite(g).all() for g in grads.values()) and all(
                torch.isfinite(s) for s in stats.values()) and all(
                torch.isfinite(s).all() for s in flatten(new_state).values())
            if not finite and not config.skip_nonfinite:
                raise NonFiniteError(
                    f"non-finite meta-gradient or loss at iteration {iteration + 1}; the last "
                    f"good checkpoint is kept in {out}. Lower outer_lr or inner_lr, or set "
                    "skip_nonfinite to drop such batches"
                )
            # A dropped batch leaves every grad None: the optimizer then changes nothing,
            # while the step-size schedule still follows the iteration count.
            apply_step(params, grads if finite else None, optimizer)
            if finite:  # a dropped batch leaves the carried state as it was, too
                state = new_state
            scheduler.step()
            skipped += not finite
            seconds.append(time.perf_counter() - began)
            trained_seconds += clock() - began_budget
            spent["seconds"] = trained_seconds
            done = iteration + 1
            # Rank 0's clock decides the budget; a signal to any rank stops every rank.
            out_of_time = bool(config.time_budget) and trained_seconds >= config.time_budget
            out_of_time, stop = any_rank(ranks, out_of_time and lead, bool(signalled()))
            last = done == config.iterations or out_of_time
            if log is not None and (done % config.log_every == 0 or last or stop):
                record = {"iteration": done, "seconds_per_iteration": seconds[-1],
                          "train_seconds": trained_seconds, "skipped": not finite,
                          **{name: float(value) for name, value in stats.items()}}
                append_line(log, json.dumps(record))
                board.train(record)
                logged_loss = record["loss"]
            advance(bar, config, done, trained_seconds, logged_loss)
            if lead and config.val_every and (done % config.val_every == 0 or last) and not stop:
                try:
                    record = validate(setup, params, state, out / VALIDATION, done,
                                       trained_seconds, signalled, progress)
                except Stopped as stopped:  # θ is whole in memory: keep it, stop now
                    save(done)
                    raise Interrupted(stopped.signum, done, out) from None
                board.validation(record)
                if on_validation is not None:
                    on_validation(record)
            if done % config.checkpoint_every == 0 or last or stop:
                save(done)
            if stop and not last:
                raise Interrupted(signalled() or 15, done, out)
            if last:
                break
    finally:
        bar.close()
        if log is not None:
            log.close()

    summary = _summary(setup, out, done, trained_seconds, seconds, params, ranks)
    summary["state"] = state
    if skipped and skipped == done:
        raise NonFiniteError(
            f"every one of the {done} meta-iterations had a non-finite meta-gradient and was "
            f"skipped (skip_nonfinite), so θ is still θ₀; lower outer_lr or inner_lr")
    if evaluate_at_end and lead:
        _scored(setup, params, state, out, done, summary, signalled, board,
                progress=progress)
    elif lead:
        board.results(config, None, done)
    barrier(ranks)
    if signalled():  # the run finished while it was being asked to stop
        raise Interrupted(signalled(), done, out, finished=True)
    return summary


def _scored(setup: Setup, params: Params, state: State, out: Path, iteration: int,
            summary: dict[str, Any], signalled: Requests, board: Board,
            names: tuple[str, ...] = (RESULTS, RESULTS_TABLE), progress: bool = False) -> None:
    """The final evaluation (:func:`final_evaluation`), then its results as the run's
    TensorBoard hyperparameters' metrics, even when they are not finite."""
    try:
        final_evaluation(setup, params, state, out, iteration, summary, signalled, names,
                         progress)
    finally:
        if "report" in summary:
            board.results(setup.config, summary["report"], iteration)


def _summary(setup: Setup, out: Path, iterations: int, trained_seconds: float,
             seconds: list[float], params: Params, ranks: Ranks) -> dict[str, Any]:
    if not seconds:  # nothing ran in this process: the run's own log has the timings
        seconds = [record["seconds_per_iteration"] for record in read_log(out / LOG)
                   if "seconds_per_iteration" in record]
    return {
        "params": params,
        "median_seconds_per_iteration": statistics.median_high(seconds) if seconds
        else float("nan"),
        "strategy": setup.strategy,
        "chunk_size": setup.chunk_size,
        "world_size": ranks.world,
        "rank": ranks.rank,
        "iterations": iterations,
        "train_seconds": trained_seconds,
    }


def _truncate_log(path: Path, iteration: int) -> None:
    """Drop log records written after the checkpoint we resume from (they will be redone),
    and a record torn by a kill mid-write."""
    if not path.is_file():
        return
    kept = [record for record in read_log(path) if record["iteration"] <= iteration]
    text = log_text(kept)
    if path.read_text() != text:
        atomic_write_data(path, text.encode())


__all__ = ["Interrupted", "NonFiniteError", "train"]
