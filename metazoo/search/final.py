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


def final_runs(tuned: TrainConfig, defaults: TrainConfig, seeds: tuple[int, ...], out: Path,
               progress: bool = True) -> dict[str, Any]:
    """Train ``tuned`` and ``defaults`` once per seed; score each at its method's own test
    steps on the test tasks (the same tasks for both, so their difference is paired).

    Returns:
        ``{"metric", "seeds", "tuned": {"mean", "ci95", "steps"}, "defaults": {…},
        "difference": {"mean", "ci95"}}``: over tasks with one seed, over seeds with several;
        also written to ``final.json``.
    """
    # Each scored at its own test steps, which must then be among those evaluated.
    tuned, defaults = (dataclasses.replace(config, eval_steps=sorted(
        {*config.eval_steps, scored_steps(config)})) for config in (tuned, defaults))
    cells = {f"{label}-seed{seed}": dataclasses.replace(config, seed=seed)
             for seed in seeds for label, config in (("tuned", tuned), ("defaults", defaults))}
    run_grid(cells, out / FINAL, score=PerTask(), jobs=1, progress=progress, desc="final runs")
    scores: dict[str, list[torch.Tensor]] = {"tuned": [], "defaults": []}
    metric = ""
    for name, config in cells.items():
        values = torch.load(out / FINAL / RUNS / name / PER_TASK, weights_only=True)
        at = values[scored_steps(config)]
        metric = "accuracy" if "accuracy" in at else "loss"
        scores[name.split("-seed")[0]].append(at[metric].double())
    summary: dict[str, Any] = {"metric": metric, "seeds": list(seeds),
                               "final_seconds": tuned.time_budget, "clock": tuned.budget_clock}
    for label, config in (("tuned", tuned), ("defaults", defaults)):
        summary[label] = {**_estimate(scores[label]), "steps": scored_steps(config)}
    differences = [a - b for a, b in zip(scores["tuned"], scores["defaults"])]
    summary["difference"] = _estimate(differences)
    write_json(out / FINAL_JSON, summary)
    return summary


def _estimate(per_seed: list[torch.Tensor]) -> dict[str, float]:
    """Mean ± 95% CI: over tasks for one seed, over the seeds' means for several."""
    if len(per_seed) == 1:
        estimate = Estimate.of(per_seed[0])
        return {"mean": estimate.mean, "ci95": estimate.ci95}
    mean, ci = mean_ci([values.mean().item() for values in per_seed])
    return {"mean": mean, "ci95": ci}


__all__ = ["FINAL", "FINAL_JSON", "final_runs"]
