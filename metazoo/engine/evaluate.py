"""Meta-test evaluation: adapt θ on held-out tasks and report mean ± 95% CI (Student t)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.func import vmap

from metazoo.algorithms import Method, State
from metazoo.core.batch import map_tasks
from metazoo.stats import Estimate
from metazoo.types import LossFn, Params, TaskBatch

__all__ = ["Estimate", "concatenate", "evaluate", "format_table", "per_task_metrics", "query_outputs",
           "summarize"]


def per_task_metrics(
    loss: LossFn,
    params: Params,
    tasks: TaskBatch,
    *,
    steps: list[int],
    method: Method,
    state: State,
    predict: Callable[[Params, torch.Tensor], torch.Tensor] | None = None,
    strategy: str = "vmap",
    chunk_size: int | None = None,
    transductive: bool = True,
) -> dict[int, dict[str, torch.Tensor]]:
    """Per-task query loss (and accuracy, given ``predict``) after each step count.

    Each task is adapted once, by the method's own test-time adaptation
    (``method.adapt``: its step sizes, proximal term and optimizer),
    which returns the parameters after every requested step count along one trajectory.

    Args:
        loss: pure loss function.
        params: the meta-parameters to evaluate (not modified).
        tasks: held-out tasks, stacked.
        steps: numbers of test-time steps to report after (0 = θ itself).
        method: the algorithm with its settings.
        state: the state the method carries (e.g. Reptile's inner Adam moment; ``{}``).
        predict: ``(params, x) -> logits``; when given, accuracy is reported too.
        strategy: ``"vmap"`` over tasks, or ``"loop"`` (one task at a time).
        chunk_size: at most this many tasks in one vmap call.
        transductive: classify a task's queries in one batch (BatchNorm's statistics over all
            of them). When False, each query is classified in a batch with the support set
            alone and its own logits kept (the non-transductive protocol of Nichol et al.,
            2018); query loss is then the cross-entropy of those logits. Regression is the
            same either way.

    Returns:
        ``{step: {"loss": [T], ["accuracy": [T]]}}``: one value per task.
    """
    ordered = sorted(set(steps))
    params = {name: p.detach() for name, p in params.items()}

    def one_task(task: TaskBatch) -> dict[str, torch.Tensor]:
        results = {}
        iterates = method.adapt(loss, params, state, task.support_x, task.support_y, ordered)
        for target, adapted in zip(ordered, iterates):
            if predict is None:
                results[f"loss/{target}"] = loss(adapted, task.query_x, task.query_y)
                continue
            logits = query_outputs(predict, adapted, task.support_x, task.query_x,
                                   transductive)  # [Q, N]
            results[f"loss/{target}"] = (loss(adapted, task.query_x, task.query_y)
                                         if transductive
                                         else F.cross_entropy(logits, task.query_y))
            hits = logits.argmax(-1) == task.query_y
            results[f"accuracy/{target}"] = hits.float().mean()
        return results

    per_task = map_tasks(one_task, tasks, strategy=strategy, chunk_size=chunk_size)
    report: dict[int, dict[str, torch.Tensor]] = {step: {} for step in ordered}
    for key, values in per_task.items():
        metric, step = key.split("/")
        report[int(step)][metric] = values.detach()
    return report


def query_outputs(predict: Callable[[Params, torch.Tensor], torch.Tensor], params: Params,
                  support_x: torch.Tensor, query_x: torch.Tensor,
                  transductive: bool = True) -> torch.Tensor:
    """The model's outputs ``[Q, ...]`` for the queries of one task, under an evaluation
    protocol: all queries in one batch (``transductive``), or each query in a batch with the
    support set alone, keeping its own outputs. They differ when the model normalises over
    its batch (BatchNorm with batch statistics)."""
    if transductive:
        return predict(params, query_x)

    def alone(query):  # one query beside the support set
        return predict(params, torch.cat([support_x, query[None]]))[-1]  # [S+1, ...] → last

    return vmap(alone)(query_x)


def evaluate(*args, **kwargs) -> dict[int, dict[str, Estimate]]:
    """Mean ± 95% CI over tasks of :func:`per_task_metrics` (same arguments)."""
    return summarize(per_task_metrics(*args, **kwargs))


def summarize(per_task: dict[int, dict[str, torch.Tensor]]) -> dict[int, dict[str, Estimate]]:
    """Mean ± 95% CI over tasks of per-task values (:func:`per_task_metrics`'s)."""
    return {step: {metric: Estimate.of(values) for metric, values in metrics.items()}
            for step, metrics in per_task.items()}


def concatenate(parts: list[dict[int, dict[str, torch.Tensor]]]
                ) -> dict[int, dict[str, torch.Tensor]]:
    """Per-task values of several batches of tasks (:func:`per_task_metrics`'s), as those of
    all the tasks, in order."""
    return {step: {metric: torch.cat([part[step][metric] for part in parts])
                   for metric in metrics} for step, metrics in parts[0].items()}


def format_table(report: dict[int, dict[str, Estimate]], title: str = "") -> str:
    """A Markdown table with one row per step count."""
    metrics = list(next(iter(report.values())))
    lines = [f"| test steps | {' | '.join(f'query {m} (± 95% CI)' for m in metrics)} |",
             "|---:|" + "---:|" * len(metrics)]
    for step, values in report.items():
        lines.append(f"| {step} | " + " | ".join(str(values[m]) for m in metrics) + " |")
    return (f"{title}\n\n" if title else "") + "\n".join(lines)
