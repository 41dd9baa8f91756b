"""Section 3: the geometry of the test-time inner paths from each algorithm's θ (the first
training k and seed)."""

from __future__ import annotations

from pathlib import Path

from torch.func import vmap

from metazoo.analysis import report as rpt
from metazoo.analysis.config import CompareConfig
from metazoo.analysis.grid import RUNS, k_label, run_name
from metazoo.analysis.metrics import path_metrics
from metazoo.analysis.sections import analysis_tasks
from metazoo.engine import rebuild_run
from metazoo.stats import mean_ci

NAMES = ["consecutive_cosine", "straightness", "path_length", "displacement",
         "first_grad_norm", "path_curvature", "top_eigenvalue"]


def measure_paths(config: CompareConfig, out: Path) -> dict[str, dict[str, tuple[float, float]]]:
    """``{algorithm: {metric: (mean, 95% half-width over tasks)}}`` of the inner paths."""
    k_train, seed = config.train_steps[0], config.seeds[0]
    steps = max(config.test_steps)
    summary = {}
    for algorithm in config.algorithms:
        setup, params, state, _ = rebuild_run(out / RUNS / run_name(algorithm, k_train, seed))
        tasks = analysis_tasks(setup, config)
        per_task = vmap(lambda task, p=params, s=setup, c=state: path_metrics(
            s.loss, p, task, steps, s.method, state=c))(tasks)
        summary[algorithm] = {n: mean_ci(per_task[n]) for n in NAMES}
    return summary


def blocks(config: CompareConfig, out: Path) -> list:
    k_train, seed = config.train_steps[0], config.seeds[0]
    steps = max(config.test_steps)
    blocks: list = [rpt.heading("3. What the inner paths look like")]
    summary = measure_paths(config, out)
    rows = [[algorithm] + [rpt.fmt(*summary[algorithm][n]) for n in NAMES]
            for algorithm in config.algorithms]
    blocks += [rpt.paragraph(
        f"{steps} test-time SGD steps on the support sets of {config.analysis_tasks} held-out "
        f"tasks from each algorithm's θ (train k = {k_label(k_train)}, seed {seed}); mean ± 95% CI over "
        "tasks. consecutive_cosine: cosine of successive inner gradients; straightness: "
        "‖φ − θ‖ / path length; path_curvature: gᵀHg/‖g‖² along each step; top_eigenvalue: "
        "largest-magnitude Hessian eigenvalue of the support loss at θ (power iteration; "
        "it can be negative)."),
        rpt.table(["algorithm", *NAMES], rows)]
    blocks.append(rpt.bar_figure(
        "q3_paths.png", "Consecutive-gradient cosine and straightness per algorithm.",
        list(config.algorithms), {n: [summary[a][n][0] for a in config.algorithms]
                                  for n in ("consecutive_cosine", "straightness")},
        ylabel="", title="inner-path shape"))
    straightest = max(config.algorithms, key=lambda a: summary[a]["straightness"][0])
    # Power iteration finds the largest-magnitude eigenvalue, which may be negative.
    sharpest = max(config.algorithms, key=lambda a: abs(summary[a]["top_eigenvalue"][0]))
    flattest = min(config.algorithms, key=lambda a: abs(summary[a]["top_eigenvalue"][0]))
    blocks.append(rpt.bullets([
        (f"Straightest inner paths from {straightest}'s θ (straightness "
         f"{summary[straightest]['straightness'][0]:.3f}; 1 is a straight line)."),
        (f"Sharpest support-loss curvature at θ (largest |eigenvalue|): {sharpest} ("
         f"{summary[sharpest]['top_eigenvalue'][0]:.3g}); flattest: {flattest} "
         f"({summary[flattest]['top_eigenvalue'][0]:.3g})."),
    ]))
    return blocks
