"""The final runs of a study: the best config and the defaults, each trained for the same
final budget on the train split and scored on the test split (the only time a study reads
it), through the library's grid runner, so that they resume as any grid does."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from metazoo.analysis.grid import PER_TASK, RUNS, PerTask, run_grid
from metazoo.engine.config import TrainConfig
from metazoo.fileio import write_json
from metazoo.search.trial import scored_steps
from metazoo.stats import Estimate, mean_ci

#: The final runs' folder in the study folder, and their summary.
FINAL = "final"
FINAL_JSON = "final.json"


def final_runs(tuned: TrainConfig, defaults: TrainConfig | None, seeds: tuple[int, ...],
               out: Path, progress: bool = True) -> dict[str, Any]:
    """Train ``tuned`` and ``defaults`` once per seed; score each at its method's own test
    steps on the test tasks (the same tasks for both, so their difference is paired).

    ``defaults`` None trains the tuned settings alone (their baseline was measured
    elsewhere); where the best settings are the defaults themselves, they are trained once
    and the difference is 0.

    Returns:
        ``{"metric", "seeds", "tuned": {"mean", "ci95", "steps", "runs"}, "defaults": {…},
        "difference": {"mean", "ci95"}}`` (without ``defaults`` and ``difference`` when
        ``defaults`` is None): over tasks with one seed, over seeds with several; also
        written to ``final.json``. ``runs`` names the run folders under ``final/runs``.
    """
    # Each scored at its own test steps, which must then be among those evaluated.
    tuned = _scored(tuned)
    configs = {"tuned": tuned}
    if defaults is not None:
        configs["defaults"] = _scored(defaults)
    same = configs.get("defaults") == tuned
    runs = {label: [f"{'tuned' if same else label}-seed{seed}" for seed in seeds]
            for label in configs}
    cells = {name: dataclasses.replace(configs[label], seed=seed)
             for label in configs for name, seed in zip(runs[label], seeds)}
    run_grid(cells, out / FINAL, score=PerTask(), jobs=1, progress=progress, desc="final runs")
    metric = "loss"
    scores: dict[str, list[torch.Tensor]] = {}
    for label, config in configs.items():
        scores[label] = []
        for name in runs[label]:
            at = torch.load(out / FINAL / RUNS / name / PER_TASK,
                            weights_only=True)[scored_steps(config)]
            metric = "accuracy" if "accuracy" in at else "loss"
            scores[label].append(at[metric].double())
    summary: dict[str, Any] = {"metric": metric, "seeds": list(seeds),
                               "final_seconds": tuned.time_budget, "clock": tuned.budget_clock}
    for label, config in configs.items():
        summary[label] = {**_estimate(scores[label]), "steps": scored_steps(config),
                          "runs": runs[label]}
    if "defaults" in configs:
        summary["defaults_are_tuned"] = same
        summary["difference"] = _estimate(
            [a - b for a, b in zip(scores["tuned"], scores["defaults"])])
    write_json(out / FINAL_JSON, summary)
    return summary


def _scored(config: TrainConfig) -> TrainConfig:
    return dataclasses.replace(config, eval_steps=sorted({*config.eval_steps,
                                                          scored_steps(config)}))


def _estimate(per_seed: list[torch.Tensor]) -> dict[str, float]:
    """Mean ± 95% CI: over tasks for one seed, over the seeds' means for several."""
    if len(per_seed) == 1:
        estimate = Estimate.of(per_seed[0])
        return {"mean": estimate.mean, "ci95": estimate.ci95}
    mean, ci = mean_ci([values.mean().item() for values in per_seed])
    return {"mean": mean, "ci95": ci}


__all__ = ["FINAL", "FINAL_JSON", "final_runs"]
