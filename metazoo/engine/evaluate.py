"""Meta-test evaluation: adapt θ on held-out tasks and report mean ± 95% CI."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import vmap

from metazoo.core import adapt
from metazoo.types import LossFn, Params, TaskBatch


@dataclass(frozen=True)
class Estimate:
    """A mean over tasks and the half-width of its normal-approximation 95% interval."""

    mean: float
    ci95: float

    @classmethod
    def of(cls, values: torch.Tensor) -> Estimate:
        values = values.double()
        count = values.numel()
        spread = values.std(unbiased=True).item() if count > 1 else float("nan")
        return cls(values.mean().item(), 1.96 * spread / math.sqrt(count))

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.ci95:.2g}"


def per_task_metrics(
    loss: LossFn,
    params: Params,
    tasks: TaskBatch,
    *,
    steps: list[int],
    inner_lr: float | Params,
    regularization: float = 0.0,
    predict: Callable[[Params, torch.Tensor], torch.Tensor] | None = None,
    strategy: str = "vmap",
    chunk_size: int | None = None,
) -> dict[int, dict[str, Estimate]]:
    """Per-task query loss (and accuracy, given ``predict``) after each step count.

    Each task is adapted once, through :func:`~metazoo.core.adapt` in consecutive segments
    (``0 → steps[0] → steps[1] …``), which is the same SGD trajectory as one long run.

    Args:
        loss: pure loss function.
        params: θ to evaluate (not modified).
        tasks: held-out tasks, stacked.
        steps: numbers of test-time SGD steps to report after (0 = θ itself).
        inner_lr: test-time step size, or per-parameter step sizes (0 keeps one fixed).
        regularization: proximal strength of the inner objective (iMAML's λ; 0 otherwise).
        predict: ``(params, x) -> logits``; when given, accuracy is reported too.
        strategy: ``"vmap"`` over tasks, or ``"loop"`` (one task at a time).
        chunk_size: at most this many tasks in one vmap call.

    Returns:
        ``{step: {"loss": [T], ["accuracy": [T]]}}``: one value per task.
    """
    ordered = sorted(set(steps))
    params = {name: p.detach() for name, p in params.items()}

    def one_task(task: TaskBatch) -> dict[str, torch.Tensor]:
        results = {}
        adapted, done = params, 0
        for target in ordered:
            adapted = adapt(
                loss, adapted, task.support_x, task.support_y, target - done, inner_lr,
                anchor=params, regularization=regularization,
            ).params
            done = target
            results[f"loss/{target}"] = loss(adapted, task.query_x, task.query_y)
            if predict is not None:
                hits = predict(adapted, task.query_x).argmax(-1) == task.query_y
                results[f"accuracy/{target}"] = hits.float().mean()
        return results

    if strategy == "vmap":
        per_task = vmap(one_task, chunk_size=chunk_size)(tasks)  # each value: [T]
    elif strategy == "loop":
        rows = [one_task(tasks.task(i)) for i in range(tasks.num_tasks)]
        per_task = {key: torch.stack([row[key] for row in rows]) for key in rows[0]}
    else:
        raise ValueError(f"unknown strategy {strategy!r}; choose 'vmap' or 'loop'")
    report: dict[int, dict[str, torch.Tensor]] = {step: {} for step in ordered}
    for key, values in per_task.items():
        metric, step = key.split("/")
        report[int(step)][metric] = values.detach()
    return report


def evaluate(*args, **kwargs) -> dict[int, dict[str, Estimate]]:
    """Mean ± 95% CI over tasks of :func:`per_task_metrics` (same arguments)."""
    return {step: {metric: Estimate.of(values) for metric, values in metrics.items()}
            for step, metrics in per_task_metrics(*args, **kwargs).items()}


def format_table(report: dict[int, dict[str, Estimate]], title: str = "") -> str:
    """A Markdown table with one row per step count."""
    metrics = list(next(iter(report.values())))
    lines = [f"| test steps | {' | '.join(f'query {m} (± 95% CI)' for m in metrics)} |",
             "|---:|" + "---:|" * len(metrics)]
    for step, values in report.items():
        lines.append(f"| {step} | " + " | ".join(str(values[m]) for m in metrics) + " |")
    return (f"{title}\n\n" if title else "") + "\n".join(lines)
