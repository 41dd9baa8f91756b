"""The outer loop: sample tasks, average per-task meta-gradients, step θ; checkpoint and resume.

State lives here and only here: θ, the outer optimizer, the task generator and the log.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

import metazoo
from metazoo.algorithms import Method, meta_gradient
from metazoo.engine.allocator import retain_freed_memory
from metazoo.engine.checkpoint import load_checkpoint, save_checkpoint, write_json
from metazoo.engine.config import TrainConfig
from metazoo.engine.evaluate import evaluate, format_table, per_task_metrics
from metazoo.models import LossFn, Params, initial_params, make_loss, make_model, make_predict
from metazoo.tasks import TaskDistribution, make_task

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
LOG = "log.jsonl"
VALIDATION = "validation.jsonl"


class NonFiniteError(RuntimeError):
    """A meta-gradient or loss was NaN or infinite."""


@dataclass
class Setup:
    """Everything a run builds from its config."""

    config: TrainConfig
    method: Method
    tasks: TaskDistribution
    eval_tasks: TaskDistribution
    model: nn.Module
    loss: LossFn
    predict: Callable | None
    strategy: str
    val_tasks: TaskDistribution | None = None


def build(config: TrainConfig) -> Setup:
    """Build tasks, model and loss for ``config``.

    The meta-parameters to train start at ``setup.method.init(initial_params(setup.model))``.
    """
    tasks = make_task(config.task, **config.task_options())
    eval_tasks = make_task(config.task, **config.task_options(evaluation=True))
    # PyTorch lets cuDNN convolutions use TF32 by default. On an H200 that changed MAML's
    # Conv4 meta-gradients by up to 30% (results/gpu-h200.md), so float32 means float32 here
    # unless asked otherwise. These are process-wide switches; they do nothing on a CPU.
    torch.backends.cudnn.allow_tf32 = config.tf32
    torch.backends.cuda.matmul.allow_tf32 = config.tf32
    if config.retain_memory and torch.device(config.device).type == "cpu":
        retain_freed_memory()
    # Initialise weights from the run's seed without touching the global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = make_model(config.model_name, tasks)
    model = model.to(device=config.device, dtype=config.torch_dtype)
    classification = tasks.loss == "cross_entropy"
    return Setup(
        config, config.method(), tasks, eval_tasks, model,
        make_loss(model, tasks.loss), make_predict(model) if classification else None,
        config.strategy,
    )


def choose_strategy(setup: Setup, params: Params, device: str) -> str:
    """Resolve ``strategy="auto"`` by timing both strategies on one batch.

    Which is faster depends on the workload: for fully connected nets vmap wins by ~10×,
    but per-task weights turn convolutions into grouped ones, which on CPU can lose to a
    loop of ordinary convolutions once query sets are large. The batch comes from its own
    generator, so the training stream is unchanged; the choice is stored in the checkpoint
    so that a resumed run keeps it.
    """
    if setup.strategy != "auto":
        return setup.strategy
    config = setup.config
    generator = torch.Generator().manual_seed(config.seed + 1)
    batch = setup.tasks.sample(min(config.meta_batch, 8), generator).to(device, config.torch_dtype)
    timings = {}
    for strategy in ("vmap", "loop"):
        for _ in range(2):  # the first call warms up (allocations, kernel selection)
            began = time.perf_counter()
            meta_gradient(setup.method, setup.loss, params, batch, strategy=strategy, chunk_size=config.chunk_size or None)
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize(device)  # kernels run asynchronously: wait for them
            timings[strategy] = time.perf_counter() - began
    return min(timings, key=timings.get)


def check_device(device: str) -> None:
    """Fail early and clearly on a device this machine does not have."""
    try:
        torch.empty(0, device=device)
    except Exception as error:
        raise ValueError(f"device {device!r} is not available here ({error}); use --device cpu") from error


def _make_optimizer(config: TrainConfig, params: Params, spent=lambda: 0.0):
    """The outer optimizer and its step-size schedule.

    The linear schedule decays to 0 over the run: over ``iterations``, or, with a time budget,
    over whichever runs out first, so that a protocol sized to a CPU by ``time_budget`` still
    anneals (Reptile's ε → 0). ``spent()`` gives the budget's seconds used so far.
    """
    tensors = list(params.values())
    if config.outer_optimizer == "adam":
        optimizer = torch.optim.Adam(tensors, lr=config.outer_lr, eps=config.outer_eps)
    else:
        optimizer = torch.optim.SGD(tensors, lr=config.outer_lr)
    if config.lr_schedule == "linear":
        def schedule(i: int) -> float:
            done = i / config.iterations
            if config.time_budget:
                done = max(done, spent() / config.time_budget)
            return max(0.0, 1.0 - done)
    else:
        schedule = lambda i: 1.0
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def _prepare_out(out: Path, resume: bool, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder; choose another --out")
    if resume:
        if not (out / CHECKPOINT).is_file():
            raise ValueError(f"cannot resume: no {CHECKPOINT} in {out}")
        return
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(
            f"--out {out} already holds files; resume it with --resume, pass --overwrite, "
            "or choose another --out"
        )
    probe = out / ".write-test"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"--out {out} is not writable ({error}); choose another --out") from error
    for stale in (CHECKPOINT, LOG, VALIDATION, "results.json", "results.md", "config.json"):
        (out / stale).unlink(missing_ok=True)


@dataclass(frozen=True)
class Ranks:
    """This process's place in a ``torchrun`` job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world: int = 1

    def shard(self, total: int) -> tuple[int, int]:
        """Tasks ``[start, stop)`` of a global batch of ``total`` that this rank computes."""
        return total * self.rank // self.world, total * (self.rank + 1) // self.world


def init_ranks(config: TrainConfig) -> tuple[Ranks, str]:
    """Join the process group ``torchrun`` describes (gloo on CPU, NCCL on GPU), if any.

    Returns the ranks and this process's device (``cuda:<local rank>`` for a CUDA run).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Ranks(), config.device
    if config.meta_batch < world:
        raise ValueError(f"meta_batch {config.meta_batch} is smaller than the {world} processes; "
                         "give every process at least one task (--meta-batch)")
    cuda = config.device.startswith("cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    device = config.device
    if cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    return Ranks(dist.get_rank(), dist.get_world_size()), device


def _all_reduce_mean(grads: Params, stats: dict[str, torch.Tensor], weight: int, total: int):
    """Turn per-rank means over ``weight`` tasks into the global mean over ``total`` tasks."""
    names, stat_names = list(grads), list(stats)
    flat = torch.cat([grads[n].reshape(-1) for n in names]
                     + [stats[n].reshape(1).to(grads[names[0]].dtype) for n in stat_names])
    flat = flat * (weight / total)
    dist.all_reduce(flat)
    pieces = flat.split([grads[n].numel() for n in names] + [1] * len(stat_names))
    reduced = {n: piece.view_as(grads[n]) for n, piece in zip(names, pieces)}
    return reduced, {n: piece[0] for n, piece in zip(stat_names, pieces[len(names):])}


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    evaluate_at_end: bool = True,
) -> dict[str, Any]:
    """Meta-train θ and (by default) evaluate it on held-out tasks.

    Writes ``config.json``, ``log.jsonl``, ``checkpoint.pt`` (atomically, at the start, every
    ``checkpoint_every`` iterations and at the end) and ``results.{json,md}`` to ``out``.
    With ``resume=True`` it continues from ``out/checkpoint.pt``; the result is bit-identical
    to an uninterrupted run on the same machine.

    Under ``torchrun`` every process draws the same global batch from the seeded task stream
    and computes its own disjoint share of it; the meta-gradients are all-reduced, so θ does
    not depend on the number of processes (to float rounding). Rank 0 alone writes files.

    Returns:
        A summary with the final θ, the evaluation report and timings.
    """
    out = Path(out)
    check_device(config.device)
    ranks, device = init_ranks(config)
    lead = ranks.rank == 0
    setup = build(config)  # before touching --out: impossible tasks or missing data fail first
    if lead:
        _prepare_out(out, resume, overwrite)
    if ranks.world > 1:
        dist.barrier()
    params = {name: p.to(device=device, dtype=config.torch_dtype)
              for name, p in setup.method.init(initial_params(setup.model)).items()}
    spent = {"seconds": 0.0}  # the budget clock, for a schedule that follows the time budget
    optimizer, scheduler = _make_optimizer(config, params, lambda: spent["seconds"])
    generator = torch.Generator().manual_seed(config.seed)
    start = 0
    if resume:
        state = load_checkpoint(out / CHECKPOINT)
        stored = TrainConfig.from_dict(state["config"])
        # retain_memory changes speed and resident memory, not results.
        differing = stored.differences(config, ignore=("retain_memory",))
        if differing:
            raise ValueError(
                "cannot resume with a different config; option(s) "
                + ", ".join(f"{name} (stored {getattr(stored, name)!r}, "
                            f"given {getattr(config, name)!r})" for name in differing)
            )
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(state["params"][name])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        start = state["iteration"]
        if lead:
            _truncate_log(out / LOG, start)
            _truncate_log(out / VALIDATION, start)
    elif lead:
        write_json(out / "config.json", config.to_dict())
    if resume and config.strategy == "auto" and "strategy" in state:
        setup.strategy = state["strategy"]  # keep the measured choice: bit-identical resume
    else:
        setup.strategy = choose_strategy(setup, params, device)
    trained_seconds = state.get("train_seconds", 0.0) if resume else 0.0
    spent["seconds"] = trained_seconds

    def checkpoint(iteration: int) -> None:
        if lead:
            save_checkpoint(out / CHECKPOINT, {
                "format": CHECKPOINT_FORMAT,
                "version": metazoo.__version__,
                "config": config.to_dict(),
                "iteration": iteration,
                "params": {name: p.detach().cpu() for name, p in params.items()},
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "generator": generator.get_state(),
                "strategy": setup.strategy,
                "train_seconds": trained_seconds,
            })

    if not resume:
        checkpoint(0)  # a run that fails at its first iteration still leaves θ₀ to resume from
    low, high = ranks.shard(config.meta_batch)
    chunk = config.chunk_size or None
    seconds: list[float] = []
    bar = tqdm(range(start, config.iterations), initial=start, total=config.iterations,
               disable=not (progress and lead), desc=f"{config.algorithm} on {config.task}",
               unit="it")
    log = open(out / LOG, "a") if lead else None  # noqa: SIM115 - closed in finally
    try:
        clock = time.process_time if config.budget_clock == "cpu" else time.perf_counter
        for iteration in bar:
            began = time.perf_counter()
            began_budget = clock()
            # Every rank draws the whole global batch, so the stream is the same for any
            # number of processes, then keeps its own share.
            batch = setup.tasks.sample(config.meta_batch, generator)
            batch = batch.slice(low, high).to(device, config.torch_dtype)
            grads, stats = meta_gradient(setup.method, setup.loss, params, batch,
                                         strategy=setup.strategy, chunk_size=chunk)
            if ranks.world > 1:
                grads, stats = _all_reduce_mean(grads, stats, high - low, config.meta_batch)
            finite = all(torch.isfinite(g).all() for g in grads.values()) and all(
                torch.isfinite(s) for s in stats.values())
            if not finite and not config.skip_nonfinite:
                raise NonFiniteError(
                    f"non-finite meta-gradient or loss at iteration {iteration + 1}; the last "
                    f"good checkpoint is kept in {out}. Lower --outer-lr or --inner-lr, or pass "
                    "--skip-nonfinite to drop such batches"
                )
            for name, p in params.items():
                # A dropped batch leaves every grad None: the optimizer then changes nothing,
                # while the step-size schedule still follows the iteration count.
                p.grad = grads[name] if finite else None
            optimizer.step()
            scheduler.step()
            seconds.append(time.perf_counter() - began)
            trained_seconds += clock() - began_budget
            spent["seconds"] = trained_seconds
            done = iteration + 1
            out_of_time = bool(config.time_budget) and trained_seconds >= config.time_budget
            if ranks.world > 1 and config.time_budget:
                # Every rank must stop at the same iteration: rank 0's clock decides.
                flag = torch.tensor([float(out_of_time)])
                dist.broadcast(flag, 0)
                out_of_time = bool(flag.item())
            last = done == config.iterations or out_of_time
            if log is not None and (done % config.log_every == 0 or last):
                record = {"iteration": done, "seconds_per_iteration": seconds[-1],
                          "skipped": not finite,
                          **{name: float(value) for name, value in stats.items()}}
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{record['loss']:.4f}")
            if lead and config.val_every and (done % config.val_every == 0 or last):
                _validate(setup, params, out / VALIDATION, done, trained_seconds)
            if done % config.checkpoint_every == 0 or last:
                checkpoint(done)
            if out_of_time:
                break
    finally:
        bar.close()
        if log is not None:
            log.close()

    summary: dict[str, Any] = {
        "params": params,
        "median_seconds_per_iteration": _median(seconds),
        "strategy": setup.strategy,
        "world_size": ranks.world,
        "iterations": done if seconds else start,
        "train_seconds": trained_seconds,
    }
    if evaluate_at_end and lead:
        report = evaluate_params(setup, params)
        summary["report"] = report
        write_results(out, config, report, summary)
    if ranks.world > 1:
        dist.barrier()
    return summary


def validation_tasks(setup: Setup) -> TaskDistribution:
    """The held-out tasks of the learning curve: the split's validation part, or its test part
    where it has none (e.g. sinusoid, which has no parts)."""
    config = setup.config
    try:
        return make_task(config.task, **config.task_options(evaluation=True, part="val"))
    except ValueError:
        return setup.eval_tasks


def _validate(setup: Setup, params: Params, path: Path, iteration: int, seconds: float) -> None:
    """Append θ's score on the fixed validation tasks to the learning curve at ``path``."""
    config = setup.config
    if setup.val_tasks is None:
        setup.val_tasks = validation_tasks(setup)
    report = evaluate_params(setup, params, num_tasks=config.val_tasks,
                             eval_tasks=setup.val_tasks)
    record = {"iteration": iteration, "train_seconds": seconds,
              **{f"{metric}@{step}": estimate.mean for step, values in report.items()
                 for metric, estimate in values.items()}}
    with open(path, "a") as file:
        file.write(json.dumps(record) + "\n")


def _median(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _truncate_log(path: Path, iteration: int) -> None:
    """Drop log lines written after the checkpoint we resume from (they will be redone)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["iteration"] <= iteration]
    path.write_text("".join(line + "\n" for line in kept))


def evaluate_params(setup: Setup, params: Params, *, steps: list[int] | None = None,
                    num_tasks: int | None = None, eval_tasks: TaskDistribution | None = None,
                    per_task: bool = False):
    """Evaluate θ on the run's held-out tasks (seeded by ``eval_seed``, shared by all runs).

    Returns mean ± CI per step count, or with ``per_task=True`` the values of every task.
    """
    config = setup.config
    generator = torch.Generator().manual_seed(config.eval_seed)
    tasks = (eval_tasks or setup.eval_tasks).sample(num_tasks or config.eval_tasks, generator)
    return (per_task_metrics if per_task else evaluate)(
        setup.loss, params, tasks.to(config.device, config.torch_dtype),
        steps=list(steps or config.eval_steps), method=setup.method, predict=setup.predict,
        transductive=config.eval_transductive,
        # Held-out tasks are many (600): vmap them a meta-batch at a time to bound memory.
        strategy=setup.strategy, chunk_size=config.chunk_size or config.meta_batch,
    )


def report_to_dict(report) -> dict[str, dict[str, dict[str, float]]]:
    return {str(step): {metric: {"mean": e.mean, "ci95": e.ci95} for metric, e in values.items()}
            for step, values in report.items()}


def protocol_name(config: TrainConfig, report) -> str:
    """How queries were classified, for a title (BatchNorm makes the two differ)."""
    if "accuracy" not in next(iter(report.values())):
        return ""
    return ", transductive" if config.eval_transductive else ", non-transductive"


def write_results(out: Path, config: TrainConfig, report, summary: dict[str, Any]) -> None:
    title = (f"{config.algorithm} on {config.task}: {config.eval_tasks} held-out tasks, "
             f"K={config.eval_k_shot or config.k_shot}, test step size {config.inner_lr}"
             + protocol_name(config, report))
    write_json(out / "results.json", {
        "config": config.to_dict(), "evaluation": report_to_dict(report),
        **{key: summary[key] for key in ("median_seconds_per_iteration", "strategy",
                                         "iterations", "train_seconds", "world_size")},
    })
    (out / "results.md").write_text(format_table(report, title) + "\n")


def load_run(run_dir: str | Path) -> tuple[Setup, Params, dict[str, Any]]:
    """Rebuild a finished (or checkpointed) run: its setup and θ."""
    state = load_checkpoint(Path(run_dir) / CHECKPOINT)
    config = TrainConfig.from_dict(state["config"])
    setup = build(config)
    setup.strategy = state.get("strategy", "vmap" if config.strategy == "auto" else config.strategy)
    params = {name: t.to(config.device, config.torch_dtype) for name, t in state["params"].items()}
    return setup, params, state


__all__ = ["NonFiniteError", "Setup", "build", "evaluate_params", "load_run", "train"]
